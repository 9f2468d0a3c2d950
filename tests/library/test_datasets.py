"""Dataset readers keep every source line (bad ones with their text) and download is safe to repeat."""

from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.sources.readers import (
    RAW_MOVIES_SCHEMA,
    RAW_RATINGS_SCHEMA,
    Layout,
    detect_layout,
    read_raw_movies,
    read_raw_ratings,
    scan_raw_ratings,
)
from recsys.sources.download import download_movielens
from recsys.sources.synthetic import generate

RATINGS_COLUMNS = ["line_no", "user_id", "movie_id", "rating", "timestamp", "raw_line"]


def rows(frame: pl.DataFrame) -> list[tuple]:
    return [tuple(row) for row in frame.iter_rows()]


def write_ml_latest(directory: Path, ratings: bytes, movies: bytes | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ratings.csv").write_bytes(ratings)
    (directory / "movies.csv").write_bytes(
        movies
        if movies is not None
        else b'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
    )
    return directory


# --- ml-latest -------------------------------------------------------------------------------


def test_ml_latest_reads_values_and_keeps_bad_lines(tmp_path: Path) -> None:
    ratings = (
        b"userId,movieId,rating,timestamp\n"
        b"1,296,5.0,1147880044\n"
        b"1,306\n"  # truncated: 2 fields
        b"1,307,5.0\n"  # truncated: 3 fields
        b"\n"  # empty line
        b"2,1,4.0,964982703,extra\n"  # 5 fields
        b"x,2,four,964982224\n"  # right field count, non-numeric values: kept as text
        b"3,1,0.5,964982400"  # last line without newline
    )
    directory = write_ml_latest(tmp_path / "ml-latest-small", ratings)
    assert detect_layout(directory) is Layout.ML_LATEST

    frame = read_raw_ratings(directory)
    assert frame.schema == pl.Schema(RAW_RATINGS_SCHEMA)
    assert rows(frame) == [
        (2, "1", "296", "5.0", "1147880044", None),
        (3, "1", "306", None, None, "1,306"),
        (4, "1", "307", "5.0", None, "1,307,5.0"),
        (5, None, None, None, None, ""),
        (6, "2", "1", "4.0", "964982703", "2,1,4.0,964982703,extra"),
        (7, "x", "2", "four", "964982224", None),
        (8, "3", "1", "0.5", "964982400", None),
    ]


def test_ml_latest_crlf_blank_tail_and_odd_bytes(tmp_path: Path) -> None:
    # CRLF endings lose their \r; blank lines at the end are kept; a control byte stays in its line.
    ratings = b"userId,movieId,rating,timestamp\r\n1,2,3.5,100\r\n1,2\x1f,3,4\r\n\r\n\n"
    directory = write_ml_latest(tmp_path / "d", ratings)
    frame = read_raw_ratings(directory)
    assert rows(frame) == [
        (2, "1", "2", "3.5", "100", None),
        (3, "1", "2\x1f", "3", "4", None),
        (4, None, None, None, None, ""),
        (5, None, None, None, None, ""),
    ]


def test_scan_matches_read(tmp_path: Path) -> None:
    directory = write_ml_latest(tmp_path / "d", b"userId,movieId,rating,timestamp\n1,2,3.5,100\n1,2\n")
    lazy = scan_raw_ratings(directory)
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().equals(read_raw_ratings(directory))


def test_ml_latest_movies_quoted_titles(tmp_path: Path) -> None:
    movies = (
        'movieId,title,genres\n'
        '1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n'
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        '26,"Amélie ""Le Fabuleux"" (2001)",Comedy|Romance\n'
        '209171,Women of Devil\'s Island (1962),(no genres listed)\n'
    ).encode("utf-8")
    directory = write_ml_latest(tmp_path / "d", b"userId,movieId,rating,timestamp\n1,1,4.0,1\n", movies)
    frame = read_raw_movies(directory)
    assert frame.schema == pl.Schema(RAW_MOVIES_SCHEMA)
    assert rows(frame) == [
        ("1", "Toy Story (1995)", None, "Adventure|Animation|Children|Comedy|Fantasy"),
        ("11", "American President, The (1995)", None, "Comedy|Drama|Romance"),
        ("26", 'Amélie "Le Fabuleux" (2001)', None, "Comedy|Romance"),
        ("209171", "Women of Devil's Island (1962)", None, "(no genres listed)"),
    ]


def test_a_malformed_quote_in_movies_names_its_line(tmp_path: Path) -> None:
    movies = (
        'movieId,title,genres\n'
        '1,Toy Story (1995),Comedy\n'
        '6,"Broken "quote" (1999),Drama\n'
        '7,Fine (2000),Drama\n'
    ).encode("utf-8")
    directory = write_ml_latest(tmp_path / "d", b"userId,movieId,rating,timestamp\n1,1,4.0,1\n", movies)
    with pytest.raises(RecsysError) as refused:
        read_raw_movies(directory)
    assert str(refused.value) == (
        f"{directory / 'movies.csv'} is not a readable CSV file: line 3 ('6,\"Broken \"quote\" (1999),Drama') "
        "is not a valid CSV row: ',' expected after '\"'."
    )


# --- ml-1m -----------------------------------------------------------------------------------


def test_ml_1m_latin1(tmp_path: Path) -> None:
    directory = tmp_path / "ml-1m"
    directory.mkdir()
    (directory / "ratings.dat").write_bytes(
        b"1::1193::5::978300760\n1::661::3\n\n2::3408::4::978300275::9\n"
    )
    (directory / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Caf\u00e9 au Lait (M\u00e9tisse) (1993)::Comedy\n"
        "3::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n".encode("latin-1")
    )
    assert detect_layout(directory) is Layout.ML_1M
    assert rows(read_raw_ratings(directory)) == [
        (1, "1", "1193", "5", "978300760", None),
        (2, "1", "661", "3", None, "1::661::3"),
        (3, None, None, None, None, ""),
        (4, "2", "3408", "4", "978300275", "2::3408::4::978300275::9"),
    ]
    movies = read_raw_movies(directory)
    assert movies.schema == pl.Schema(RAW_MOVIES_SCHEMA)
    assert rows(movies) == [
        ("1", "Toy Story (1995)", None, "Animation|Children|Comedy"),
        ("2", "Caf\u00e9 au Lait (M\u00e9tisse) (1993)", None, "Comedy"),
        ("3", "Star Wars: Episode IV - A New Hope (1977)", None, "Action|Sci-Fi"),
    ]


# --- ml-100k ---------------------------------------------------------------------------------


def u_item_line(movie_id: int, title: str, release: str, flags: list[int]) -> str:
    assert len(flags) == 19
    url = "http://us.imdb.com/M/title-exact?x"
    return "|".join([str(movie_id), title, release, "", url, *map(str, flags)]) + "\n"


def test_ml_100k_latin1_flags_and_year(tmp_path: Path) -> None:
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    (directory / "u.data").write_bytes(b"196\t242\t3\t881250949\n186\t302\t3\n\t\t\t\n")
    toy_story = [0, 0, 0, 1, 1, 1] + [0] * 13  # Animation, Children's, Comedy
    unknown_only = [1] + [0] * 18
    film_noir_western = [0] * 10 + [1] + [0] * 7 + [1]
    (directory / "u.item").write_bytes(
        (
            u_item_line(1, "Toy Story (1995)", "01-Jan-1995", toy_story)
            + u_item_line(267, "unknown", "", unknown_only)
            + u_item_line(1300, "Jean de Florette (1986) \u00e0 la \u00e9", "20-Jun-1987", film_noir_western)
        ).encode("latin-1")
    )
    assert detect_layout(directory) is Layout.ML_100K
    assert rows(read_raw_ratings(directory)) == [
        (1, "196", "242", "3", "881250949", None),
        (2, "186", "302", "3", None, "186\t302\t3"),
        (3, "", "", "", "", None),  # right number of separators: empty texts, not a wrong count
    ]
    assert rows(read_raw_movies(directory)) == [
        ("1", "Toy Story (1995)", "1995", "Animation|Children|Comedy"),
        ("267", "unknown", None, "(no genres listed)"),
        ("1300", "Jean de Florette (1986) \u00e0 la \u00e9", "1987", "Film-Noir|Western"),
    ]


# --- Netflix ---------------------------------------------------------------------------------


def test_netflix_blocks_dates_and_titles(tmp_path: Path) -> None:
    directory = tmp_path / "netflix"
    directory.mkdir()
    (directory / "combined_data_1.txt").write_bytes(
        b"1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n2:\n2059652,4,2005-13-45\n\n"
    )
    (directory / "combined_data_2.txt").write_bytes(b"3:\n1,2\n4,5,2004-01-01,x\n10:\n7,1,1999-12-31")
    (directory / "movie_titles.csv").write_bytes(
        "1,2003,Dinosaur Planet\n"
        "2,NULL,Isle of Man TT 2004 Review\n"
        "3,1997,Character, The, Sequel\n"
        "4,2004,Pok\u00e9mon\n".encode("latin-1")
    )
    assert detect_layout(directory) is Layout.NETFLIX
    frame = read_raw_ratings(directory)
    assert frame.schema == pl.Schema(RAW_RATINGS_SCHEMA)
    assert rows(frame) == [
        (2, "1488844", "1", "3", "1125964800", None),
        (3, "822109", "1", "5", "1115942400", None),
        (5, "2059652", "2", "4", "2005-13-45", None),  # unparseable date kept as written
        (6, None, None, None, None, ""),
        # line numbers run on across files: file 2 starts at line 7
        (8, "1", "3", "2", None, "1,2"),
        (9, "4", "3", "5", "1072915200", "4,5,2004-01-01,x"),
        (11, "7", "10", "1", "946598400", None),
    ]
    assert rows(read_raw_movies(directory)) == [
        ("1", "Dinosaur Planet", "2003", "(no genres listed)"),
        ("2", "Isle of Man TT 2004 Review", None, "(no genres listed)"),
        ("3", "Character, The, Sequel", "1997", "(no genres listed)"),
        ("4", "Pok\u00e9mon", "2004", "(no genres listed)"),
    ]


def test_netflix_files_in_numeric_order(tmp_path: Path) -> None:
    directory = tmp_path / "netflix"
    directory.mkdir()
    for number in (10, 2, 1):
        block = f"{number}:\n{number},1,2005-01-01\n"
        (directory / f"combined_data_{number}.txt").write_bytes(block.encode())
    (directory / "movie_titles.csv").write_bytes(b"1,2003,A\n")
    frame = read_raw_ratings(directory)
    assert frame["movie_id"].to_list() == ["1", "2", "10"]
    assert frame["line_no"].to_list() == [2, 4, 6]


# --- errors ----------------------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(RecsysError, match=f"{missing} does not exist"):
        read_raw_ratings(missing)


def test_unknown_layout(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n")  # no movies.csv
    with pytest.raises(RecsysError) as raised:
        detect_layout(tmp_path)
    message = str(raised.value)
    assert str(tmp_path) in message and "no known dataset layout" in message
    assert "u.data+u.item" in message


@pytest.mark.parametrize(
    "content",
    [b"", b"userId,movieId,rating,timestamp\n", b"userId,movieId,rating,timestamp\n\n"],
    ids=["zero-bytes", "header-only", "header-and-blank"],
)
def test_empty_ml_latest_ratings(tmp_path: Path, content: bytes) -> None:
    directory = write_ml_latest(tmp_path / "d", content)
    with pytest.raises(RecsysError, match=str(directory / "ratings.csv")):
        read_raw_ratings(directory)


def test_empty_ml_1m_ratings(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_bytes(b"")
    (tmp_path / "movies.dat").write_bytes(b"1::A (1995)::Comedy\n")
    with pytest.raises(RecsysError, match=f"{tmp_path / 'ratings.dat'} is empty"):
        read_raw_ratings(tmp_path)


def test_wrong_ml_latest_header(tmp_path: Path) -> None:
    directory = write_ml_latest(tmp_path / "d", b"movieId,userId,rating,timestamp\n1,2,3.5,4\n")
    with pytest.raises(RecsysError) as raised:
        read_raw_ratings(directory)
    assert str(directory / "ratings.csv") in str(raised.value)
    assert "movieId,userId,rating,timestamp" in str(raised.value)


def test_wrong_ml_latest_movies_header(tmp_path: Path) -> None:
    ratings = b"userId,movieId,rating,timestamp\n1,2,3.5,4\n"
    directory = write_ml_latest(tmp_path / "d", ratings, b"id,name\n1,A\n")
    with pytest.raises(RecsysError, match=str(directory / "movies.csv")):
        read_raw_movies(directory)


# --- download --------------------------------------------------------------------------------


def make_zip(path: Path, folder: str) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{folder}/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
        archive.writestr(f"{folder}/movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n")
        archive.writestr(f"{folder}/README.txt", "test archive\n")


def test_download_extracts_and_is_idempotent(tmp_path: Path) -> None:
    server = tmp_path / "server"
    server.mkdir()
    make_zip(server / "ml-latest-small.zip", "ml-latest-small")
    dest = tmp_path / "data"

    dataset = download_movielens("ml-latest-small", dest, base_url=server.as_uri() + "/")
    assert dataset == dest / "ml-latest-small"
    assert read_raw_ratings(dataset).height == 1
    assert sorted(path.name for path in dest.iterdir()) == ["ml-latest-small"]  # no zip or scratch left

    # Already there: no download happens (the source is gone now).
    (server / "ml-latest-small.zip").unlink()
    assert download_movielens("ml-latest-small", dest, base_url=server.as_uri() + "/") == dataset


def test_download_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(RecsysError, match="ml-2m"):
        download_movielens("ml-2m", tmp_path)


def test_download_bad_url(tmp_path: Path) -> None:
    base_url = (tmp_path / "missing").as_uri() + "/"
    with pytest.raises(RecsysError, match=f"could not download {base_url}ml-100k.zip"):
        download_movielens("ml-100k", tmp_path / "data", base_url=base_url)
    assert not any((tmp_path / "data").iterdir())  # no partial file left behind


def test_download_not_a_zip(tmp_path: Path) -> None:
    server = tmp_path / "server"
    server.mkdir()
    (server / "ml-1m.zip").write_text("<html>Not Found</html>")
    dest = tmp_path / "data"
    with pytest.raises(RecsysError, match=f"{dest / 'ml-1m.zip'} .* is not a zip archive"):
        download_movielens("ml-1m", dest, base_url=server.as_uri() + "/")


# --- synthetic data ------------------------------------------------------------------------


def test_synthetic_output_is_readable(tmp_path: Path) -> None:
    truth = generate(tmp_path / "synthetic", 5_000, seed=3)
    assert detect_layout(tmp_path / "synthetic") is Layout.ML_LATEST
    ratings = read_raw_ratings(tmp_path / "synthetic")
    assert ratings.height == 5_000
    assert ratings["raw_line"].null_count() == 5_000
    assert ratings["line_no"].to_list() == list(range(2, 5_002))
    movies = read_raw_movies(tmp_path / "synthetic")
    assert movies.height == truth["n_movies"]
    assert movies.filter(pl.col("title").str.contains(",")).height > 0  # quoted titles survive
    assert set(ratings["movie_id"].unique()) <= set(movies["movie_id"])
