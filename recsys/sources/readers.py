"""Read the public rating datasets into one raw, all-text shape (downloading them: `download`).

Why this module exists: the raw archive must hold exactly what the source said, so that the
cleaning step (which types values and rejects bad rows with a reason) can point at the offending
line. The readers therefore never parse, fix or drop a data line. Each file is read as whole lines
with polars (multi-threaded, no Python loop over rows) and split with vectorised string
expressions; a line that does not split into the layout's number of fields keeps its original
text in `raw_line`, and an empty line becomes a row whose fields are all null.

Four layouts are understood (see `Layout`); `detect_layout` tells them apart by the files in the
dataset directory. Encodings: the ml-latest family is UTF-8 (read "lossy", so a stray bad byte
becomes U+FFFD in the text instead of failing the whole file); ml-1m and ml-100k are latin-1 and
are transcoded to UTF-8 in memory before polars sees them (those files are at most a few tens of
MB); the Netflix ratings are ASCII and read directly, its titles file is latin-1. Genres use the
ml-latest spellings everywhere (ml-1m and ml-100k say "Children's", read as "Children").

Line numbers are physical lines of the source file, header lines included (the first ml-latest
rating is line 2; Netflix `MovieID:` lines produce no row but are counted); for several Netflix
files they run on from one file to the next.

Line reading trick: polars' CSV reader is given the end-of-line byte as its field separator and no
quote character, so every physical line is one string field, whatever bytes it holds. With that
setting (and empty_string_is_null=False) an empty line reads as "" (not skipped), "\\r\\n" endings lose their "\\r", and a final line
without a newline is still read; a trailing newline does not add an extra empty row.
"""

from __future__ import annotations

import csv
import enum
import re
from pathlib import Path

import polars as pl

from recsys.errors import RecsysError
from recsys.genres import NO_GENRES

RAW_RATINGS_SCHEMA: dict[str, pl.DataType] = {
    "line_no": pl.Int64(),
    "user_id": pl.String(),
    "movie_id": pl.String(),
    "rating": pl.String(),
    "timestamp": pl.String(),
    "raw_line": pl.String(),
}

RAW_MOVIES_SCHEMA: dict[str, pl.DataType] = {
    "movie_id": pl.String(),
    "title": pl.String(),
    "year": pl.String(),
    "genres": pl.String(),
}


# The ml-latest ratings header; anything else means the columns may be in another order.
ML_LATEST_RATINGS_HEADER = "userId,movieId,rating,timestamp"
ML_LATEST_MOVIES_COLUMNS = ["movieId", "title", "genres"]

# u.item's 19 genre flags, in file order, spelled the ml-latest way ("Children's" -> "Children").
ML_100K_GENRE_FLAGS = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]

_NETFLIX_RATINGS_PATTERN = re.compile(r"^combined_data_(\d+)\.txt$")
_EXPECTED_LAYOUTS = (
    "ratings.csv+movies.csv, ratings.dat+movies.dat, u.data+u.item, "
    "or combined_data_*.txt+movie_titles.csv"
)


class Layout(enum.Enum):
    """The on-disk shapes of the datasets this platform can ingest."""

    ML_LATEST = "ml-latest"  # ml-32m, ml-25m, ml-latest, ml-latest-small
    ML_1M = "ml-1m"
    ML_100K = "ml-100k"
    NETFLIX = "netflix"


def detect_layout(path: Path) -> Layout:
    """Tell which dataset layout the directory `path` holds, from the files present."""
    path = Path(path)
    if not path.exists():
        raise RecsysError(f"{path} does not exist.")
    if not path.is_dir():
        raise RecsysError(f"{path} is not a directory; point at the folder that holds the dataset files.")
    if (path / "ratings.csv").is_file() and (path / "movies.csv").is_file():
        return Layout.ML_LATEST
    if (path / "ratings.dat").is_file() and (path / "movies.dat").is_file():
        return Layout.ML_1M
    if (path / "u.data").is_file() and (path / "u.item").is_file():
        return Layout.ML_100K
    if _netflix_ratings_files(path) and (path / "movie_titles.csv").is_file():
        return Layout.NETFLIX
    raise RecsysError(f"{path} holds no known dataset layout (expected {_EXPECTED_LAYOUTS}).")


def scan_raw_ratings(path: Path) -> pl.LazyFrame:
    """Lazily read the ratings of the dataset in directory `path` to `RAW_RATINGS_SCHEMA`."""
    path = Path(path)
    layout = detect_layout(path)
    if layout is Layout.ML_LATEST:
        ratings = path / "ratings.csv"
        check_ml_latest_header(ratings)
        # Line 1 is the header; data lines keep their physical line numbers.
        lines = _scan_lines(ratings).filter(pl.col("line_no") > 1)
        return _split_ratings(lines, ",")
    if layout is Layout.ML_1M:
        ratings = path / "ratings.dat"
        _check_not_empty(ratings)
        return _split_ratings(_scan_lines(_latin1_as_utf8(ratings)), "::")
    if layout is Layout.ML_100K:
        ratings = path / "u.data"
        _check_not_empty(ratings)
        return _split_ratings(_scan_lines(_latin1_as_utf8(ratings)), "\t")
    return _scan_netflix_ratings(_netflix_ratings_files(path))


def read_raw_ratings(path: Path) -> pl.DataFrame:
    """Read the ratings of the dataset in directory `path` to `RAW_RATINGS_SCHEMA`, in file order."""
    return _collect(scan_raw_ratings(path), path)


def read_raw_movies(path: Path) -> pl.DataFrame:
    """Read the movies of the dataset in directory `path` to `RAW_MOVIES_SCHEMA`.

    Blank lines of the movies files are skipped (they describe no movie); other lines are kept,
    with null fields where they do not match the layout.
    """
    path = Path(path)
    layout = detect_layout(path)
    if layout is Layout.ML_LATEST:
        movies = _read_ml_latest_movies(path / "movies.csv")
    elif layout is Layout.ML_1M:
        movies = _read_ml_1m_movies(path / "movies.dat")
    elif layout is Layout.ML_100K:
        movies = _read_ml_100k_movies(path / "u.item")
    else:
        movies = _read_netflix_movies(path / "movie_titles.csv")
    return movies.select(pl.col(name).cast(dtype) for name, dtype in RAW_MOVIES_SCHEMA.items())


# ---------------------------------------------------------------------------------------------
# Ratings


def _scan_lines(source: Path | list[Path] | bytes) -> pl.LazyFrame:
    """One row per physical line: `line_no` (1-based, running across files) and `line` text."""
    return (
        pl.scan_csv(
            source,
            has_header=False,
            # The separator is the end-of-line byte, so no byte inside a line can split it.
            separator="\n",
            quote_char=None,
            schema={"line": pl.String},
            empty_string_is_null=False,
            encoding="utf8-lossy",
            include_file_paths="source_file" if isinstance(source, list) else None,
        )
        .with_row_index("line_no", offset=1)
        .with_columns(pl.col("line_no").cast(pl.Int64))
    )


def _split_ratings(lines: pl.LazyFrame, separator: str) -> pl.LazyFrame:
    """Split `line` into the four rating fields; keep the text of lines with a wrong field count."""
    fields = ["user_id", "movie_id", "rating", "timestamp"]
    return (
        lines.with_columns(_split_line(separator).alias("parts"))
        .select(
            "line_no",
            *_list_fields("parts", fields),
            pl.when(_wrong_count("parts", len(fields))).then(pl.col("line")).alias("raw_line"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in RAW_RATINGS_SCHEMA.items())
    )


def _split_line(separator: str) -> pl.Expr:
    """The fields of `line` as a list; null for an empty line, so all its fields come out null."""
    line = pl.col("line")
    # A list split measured faster than split_exact plus a separator count (0.30 s vs 0.43 s, 5M lines).
    return pl.when(line != "").then(line.str.split(separator, literal=True))


def _list_fields(parts: str, names: list[str]) -> list[pl.Expr]:
    return [pl.col(parts).list.get(index, null_on_oob=True).alias(name) for index, name in enumerate(names)]


def _wrong_count(parts: str, expected: int) -> pl.Expr:
    return pl.col(parts).list.len().fill_null(0) != expected


def _scan_netflix_ratings(files: list[Path]) -> pl.LazyFrame:
    """Netflix ratings: `MovieID:` lines open a block of `CustomerID,Rating,YYYY-MM-DD` lines."""
    for file in files:
        _check_not_empty(file)
    line = pl.col("line")
    is_movie_header = line.str.contains(r"^\d+:$")
    fields = ["user_id", "rating", "date"]
    # A block never continues into the next file: the movie id is carried forward within a file only.
    block_movie_id = (
        pl.when(is_movie_header).then(line.str.strip_suffix(":")).forward_fill().over("source_file")
    )
    epoch_text = pl.col("date").str.strptime(pl.Date, "%Y-%m-%d", strict=False).dt.epoch("s").cast(pl.String)
    return (
        _scan_lines(files)
        .with_columns(
            block_movie_id.alias("block_movie_id"),
            is_movie_header.alias("is_movie_header"),
            _split_line(",").alias("parts"),
        )
        # Header lines are not ratings, but they were counted in line_no so rows stay findable.
        .filter(~pl.col("is_movie_header"))
        .with_columns(
            *_list_fields("parts", fields),
            _wrong_count("parts", len(fields)).alias("wrong_field_count"),
        )
        .select(
            "line_no",
            "user_id",
            pl.when(line != "").then(pl.col("block_movie_id")).alias("movie_id"),
            "rating",
            # A date that does not parse stays as written, for the cleaner to reject.
            pl.coalesce(epoch_text, pl.col("date")).alias("timestamp"),
            pl.when(pl.col("wrong_field_count")).then(line).alias("raw_line"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in RAW_RATINGS_SCHEMA.items())
    )


def check_ml_latest_header(ratings: Path) -> None:
    """Refuse an empty or header-only ratings.csv, or one whose columns are not the known ones."""
    with ratings.open("rb") as file:
        header = file.readline(4096).decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
        has_data = _has_non_blank_bytes(file)
    if not header.strip() and not has_data:
        raise RecsysError(f"{ratings} is empty.")
    if header != ML_LATEST_RATINGS_HEADER:
        raise RecsysError(
            f"{ratings} starts with header {header!r}, expected {ML_LATEST_RATINGS_HEADER!r}."
        )
    if not has_data:
        raise RecsysError(f"{ratings} holds a header but no ratings.")


def _check_not_empty(ratings: Path) -> None:
    with ratings.open("rb") as file:
        if not _has_non_blank_bytes(file):
            raise RecsysError(f"{ratings} is empty.")


def _has_non_blank_bytes(file) -> bool:
    """Whether the rest of an open binary file holds anything but whitespace (reads until it knows)."""
    while block := file.read(1 << 20):
        if block.strip():
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Movies


def _read_ml_latest_movies(movies: Path) -> pl.DataFrame:
    try:
        frame = pl.read_csv(movies, infer_schema=False, quote_char='"', encoding="utf8-lossy")
    except pl.exceptions.NoDataError as error:
        raise RecsysError(f"{movies} is empty.") from error
    except pl.exceptions.PolarsError as error:
        raise RecsysError(f"{movies} is not a readable CSV file: {_first_bad_csv_line(movies) or _first_line(error)}.") from error
    if frame.columns != ML_LATEST_MOVIES_COLUMNS:
        raise RecsysError(
            f"{movies} has columns {','.join(frame.columns)!r}, "
            f"expected {','.join(ML_LATEST_MOVIES_COLUMNS)!r}."
        )
    return frame.select(
        pl.col("movieId").alias("movie_id"),
        "title",
        pl.lit(None, pl.String).alias("year"),
        "genres",
    )


def _first_bad_csv_line(path: Path) -> str | None:
    """Where a CSV file stops parsing, for the error: "line 7 (...) ...". Movies files are small
    and MovieLens titles hold no line breaks, so each line is parsed on its own, strictly."""
    with open(path, encoding="utf8", errors="replace", newline="") as file:
        for number, line in enumerate(file, start=1):
            try:
                next(csv.reader([line], strict=True), None)
            except csv.Error as error:
                shown = line.rstrip("\r\n")
                shown = shown if len(shown) <= 80 else shown[:80] + "..."
                return f"line {number} ({shown!r}) is not a valid CSV row: {error}"
    return None


def _read_ml_1m_movies(movies: Path) -> pl.DataFrame:
    line = pl.col("line")
    # Greedy middle group: a title may hold a single ':' but the genres never hold "::".
    parts = line.str.extract_groups(r"^(?<movie_id>[^:]*)::(?<title>.*)::(?<genres>[^:]*)$")
    return (
        _read_lines(_latin1_as_utf8(movies), movies)
        .select(parts.alias("parts"))
        .unnest("parts")
        .select(
            "movie_id",
            "title",
            pl.lit(None, pl.String).alias("year"),
            # ml-1m spells it "Children's"; use the ml-latest spelling so genres mean one thing.
            pl.col("genres").str.replace_all("Children's", "Children", literal=True),
        )
    )


def _read_ml_100k_movies(movies: Path) -> pl.DataFrame:
    fields = pl.col("line").str.split("|")
    first_flag = 5  # movie id | title | release date | video release date | IMDb URL | flags...
    genre_names = [
        pl.when(fields.list.get(first_flag + index, null_on_oob=True) == "1").then(pl.lit(genre))
        for index, genre in enumerate(ML_100K_GENRE_FLAGS)
        if genre != "unknown"  # "unknown" alone means no genres; with others it adds nothing.
    ]
    genres = pl.concat_list(genre_names).list.drop_nulls().list.join("|")
    release_date = fields.list.get(2, null_on_oob=True)
    return _read_lines(_latin1_as_utf8(movies), movies).select(
        fields.list.get(0, null_on_oob=True).alias("movie_id"),
        fields.list.get(1, null_on_oob=True).alias("title"),
        release_date.str.extract(r"(\d{4})\s*$").alias("year"),
        pl.when(genres == "").then(pl.lit(NO_GENRES)).otherwise(genres).alias("genres"),
    )


def _read_netflix_movies(movies: Path) -> pl.DataFrame:
    # Titles hold unquoted commas, so only the first two commas separate fields.
    parts = pl.col("line").str.splitn(",", 3).struct.rename_fields(["movie_id", "year", "title"])
    return (
        _read_lines(_latin1_as_utf8(movies), movies)
        # Some copies of the file carry a header line; it describes no movie.
        .filter(pl.col("line").str.to_lowercase() != "movieid,yearofrelease,title")
        .select(parts.alias("parts"))
        .unnest("parts")
        .select(
            "movie_id",
            "title",
            pl.when(pl.col("year") != "NULL").then(pl.col("year")).alias("year"),
            pl.lit(NO_GENRES).alias("genres"),
        )
    )


def _read_lines(source: bytes, file: Path) -> pl.DataFrame:
    """The non-blank lines of a movies file, or an error naming it when there are none."""
    lines = _scan_lines(source).filter(pl.col("line").str.strip_chars() != "").collect()
    if lines.is_empty():
        raise RecsysError(f"{file} is empty.")
    return lines


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _latin1_as_utf8(file: Path) -> bytes:
    """The bytes of a latin-1 file as UTF-8 (polars reads UTF-8 only); ASCII passes unchanged."""
    data = file.read_bytes()
    return data if data.isascii() else data.decode("latin-1").encode("utf-8")


def _netflix_ratings_files(path: Path) -> list[Path]:
    """combined_data_N.txt files in numeric order of N (so _10 comes after _9)."""
    numbered = []
    for file in path.glob("combined_data_*.txt"):
        match = _NETFLIX_RATINGS_PATTERN.match(file.name)
        if match and file.is_file():
            numbered.append((int(match.group(1)), file))
    return [file for _, file in sorted(numbered)]


def _collect(frame: pl.LazyFrame, path: Path) -> pl.DataFrame:
    try:
        return frame.collect()
    except pl.exceptions.PolarsError as error:
        raise RecsysError(f"{path} could not be read: {_first_line(error)}.") from error


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
