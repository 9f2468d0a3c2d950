"""Raw text rows in, clean typed rows and quarantined rejects out (pure Polars).

Every input row ends up in exactly one of the two outputs, so a batch's raw row count always
equals clean plus rejected. A reject carries a `reason` category (for counting) and a `detail`
sentence (for a person). The checks run in a fixed order and a row gets the first reason that
applies, so the counts by reason are stable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from recsys.genres import NO_GENRES
from recsys.raw.archive import RATING_FIELDS

# MovieLens began collecting ratings in 1995 and is the oldest source we read: an earlier
# timestamp is a corrupt value, not an old rating.
MIN_TIMESTAMP = int(dt.datetime(1995, 1, 1, tzinfo=dt.timezone.utc).timestamp())
MIN_RATING, MAX_RATING = 0.5, 5.0
MIN_MOVIE_YEAR = 1874  # the oldest surviving motion picture
MAX_MOVIE_YEAR = 2100

CLEAN_RATINGS_SCHEMA = {
    "batch": pl.Int32,
    "seq": pl.Int64,
    "user_id": pl.Int64,
    "movie_id": pl.Int64,
    "rating": pl.Float64,
    "timestamp": pl.Int64,
}
REJECT_COLUMNS = ["batch", "seq", "line_no", "user_id", "movie_id", "rating", "timestamp", "raw_line", "reason", "detail"]
CLEAN_MOVIES_SCHEMA = {"movie_id": pl.Int64, "title": pl.String, "year": pl.Int32, "genres": pl.String}
MOVIE_REJECT_COLUMNS = ["movie_id", "title", "year", "genres", "reason", "detail"]



@dataclass(frozen=True)
class Cleaned:
    clean: pl.DataFrame
    rejects: pl.DataFrame

    @property
    def reject_counts(self) -> dict[str, int]:
        counts = self.rejects.group_by("reason").len().sort("reason")
        return dict(zip(counts["reason"], counts["len"]))


def _text(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars()


def _shown(text: pl.Expr, limit: int = 60) -> pl.Expr:
    """A field as a reject's sentence quotes it: whole when short, else its start and its length
    (a 1 MB garbage field stays in raw_line, not in every sentence about it)."""
    long = text.str.len_chars() > limit
    return pl.when(long).then(pl.format("{}... ({} characters)", text.str.slice(0, limit), text.str.len_chars())).otherwise(text)


def _first_reason(rules: list[tuple[pl.Expr, str, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    """Fold (condition, reason, detail) rules into the first reason and detail that apply."""
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    detail: pl.Expr = pl.lit(None, dtype=pl.String)
    for condition, name, sentence in reversed(rules):
        reason = pl.when(condition).then(pl.lit(name)).otherwise(reason)
        detail = pl.when(condition).then(sentence).otherwise(detail)
    return reason, detail


def _unparsed_rules() -> list[tuple[pl.Expr, str, pl.Expr]]:
    """Why a line with `raw_line` set is not four numbers, read off its text."""
    parts = pl.col("raw_line").str.split(",")
    wrong_count = parts.list.len() != len(RATING_FIELDS)
    part = {field: parts.list.get(i, null_on_oob=True).str.strip_chars() for i, field in enumerate(RATING_FIELDS)}
    empty = {field: part[field].is_null() | (part[field] == "") for field in RATING_FIELDS}
    return [
        (
            wrong_count,
            "malformed_line",
            pl.format("line {} does not split into 4 fields: {}", pl.col("line_no"), _shown(pl.col("raw_line"), 200)),
        ),
        *[(empty[f], "missing_value", pl.format("line {} has no {}", pl.col("line_no"), pl.lit(f))) for f in RATING_FIELDS],
        *[
            (
                pl.col(f).is_null(),
                "not_a_number",
                pl.format("{} {} is not {}", pl.lit(f), _shown(part[f]), pl.lit("a number" if f == "rating" else "an integer")),
            )
            for f in RATING_FIELDS
        ],
    ]


def clean_ratings(
    raw: pl.DataFrame,
    known_movie_ids: pl.Series,
    max_timestamp: int,
    min_timestamp: int = MIN_TIMESTAMP,
    earlier: pl.DataFrame | None = None,
) -> Cleaned:
    """Validate one batch of raw rating rows into clean rows and rejects.

    `earlier` holds rows the lake already kept from earlier batches (user_id, movie_id,
    timestamp, rating): a row of this batch that repeats one of them is a duplicate too, exactly
    as if both were in this batch, so a pair split across a batch boundary is not kept twice.

    `raw` has the raw store's columns: batch, seq, line_no, the four typed fields (NULL where the
    text was no number) and raw_line (the text of any line that was not four numbers).
    Rejected: malformed lines, missing values, non-numbers (NaN included), non-positive ids,
    ratings outside 0.5-5 or off the half-star grid, timestamps before 1995 or after the archive
    was loaded, movie ids missing from movies, and exact or conflicting duplicates of an earlier
    row (same user, movie and timestamp; the first in replay order is kept).
    """
    rating = pl.col("rating")
    ts = pl.col("timestamp")
    unparsed = [(pl.col("raw_line").is_not_null() & cond, name, detail) for cond, name, detail in _unparsed_rules()]
    rules: list[tuple[pl.Expr, str, pl.Expr]] = [
        *unparsed,
        (
            (pl.col("user_id") < 1) | (pl.col("movie_id") < 1),
            "out_of_range",
            pl.format("ids must be positive: user_id {}, movie_id {}", pl.col("user_id"), pl.col("movie_id")),
        ),
        ((rating < MIN_RATING) | (rating > MAX_RATING), "out_of_range", pl.format("rating {} is outside 0.5-5", rating)),
        ((rating * 2).round(0) != rating * 2, "off_grid", pl.format("rating {} is not a half star", rating)),
        (
            (ts < min_timestamp) | (ts > max_timestamp),
            "impossible_timestamp",
            pl.format("timestamp {} is before 1995 or after the archive was loaded", ts),
        ),
        (
            ~pl.col("movie_id").is_in(known_movie_ids.cast(pl.Int64).implode()),
            "unknown_movie",
            pl.format("movie_id {} is not in movies", pl.col("movie_id")),
        ),
    ]
    reason, detail = _first_reason(rules)
    checked = raw.with_columns(reason=reason, detail=detail)

    # Duplicates are judged among rows that are otherwise valid, so a garbage row never
    # displaces a good one; the earliest in replay order wins.
    key = ["user_id", "movie_id", "timestamp"]
    valid = checked.filter(pl.col("reason").is_null()).sort("seq").with_columns(kept_before=pl.lit(False))
    if earlier is not None and earlier.height:
        # The lake's earlier rows go first in the judgement, then leave again.
        anchors = earlier.select(*key, "rating").join(valid.select(key).unique(), on=key, how="semi")
        valid = pl.concat([anchors.with_columns(kept_before=pl.lit(True)), valid], how="diagonal_relaxed")
    first = pl.int_range(pl.len()).over(key) == 0
    same_rating = pl.col("rating") == pl.col("rating").first().over(key)
    valid = valid.with_columns(
        reason=pl.when(first)
        .then(pl.lit(None, dtype=pl.String))
        .when(same_rating)
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit("conflicting_duplicate")),
    ).with_columns(
        detail=pl.when(pl.col("reason") == "duplicate")
        .then(pl.format("line {} repeats an earlier row", pl.col("line_no")))
        .when(pl.col("reason") == "conflicting_duplicate")
        .then(pl.format("line {} rates the same movie at the same time differently", pl.col("line_no")))
    ).filter(~pl.col("kept_before")).select(checked.columns)
    everything = pl.concat([checked.filter(pl.col("reason").is_not_null()), valid])
    clean = (
        everything.filter(pl.col("reason").is_null())
        .select(pl.col(name).cast(dtype) for name, dtype in CLEAN_RATINGS_SCHEMA.items())
        .sort("seq")
    )
    rejects = everything.filter(pl.col("reason").is_not_null()).select(REJECT_COLUMNS).sort("seq")
    return Cleaned(clean=clean, rejects=rejects)


TITLE_YEAR = r"\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$"


def clean_movies(raw: pl.DataFrame) -> Cleaned:
    """Type the movies table: integer id, title without its year, release year, genre list.

    The year comes from the layout's own year column where it has one, else from a trailing
    "(1995)" in the title. Genres stay pipe-joined; "(no genres listed)" becomes "".
    """
    parsed = raw.with_columns(
        movie_id_v=_text("movie_id").cast(pl.Int64, strict=False),
        title_v=pl.col("title").str.replace(TITLE_YEAR, "").str.strip_chars(),
        year_v=pl.coalesce(
            _text("year").cast(pl.Int32, strict=False),
            pl.col("title").str.extract(TITLE_YEAR, 1).cast(pl.Int32, strict=False),
        ),
        genres_v=pl.when(_text("genres").is_in([NO_GENRES, ""]) | pl.col("genres").is_null())
        .then(pl.lit(""))
        .otherwise(_text("genres")),
    )
    # A blank line (a trailing one is common) reads as a row of nulls: quarantined, and said so.
    blank = pl.all_horizontal(_text(c).is_null() | (_text(c) == "") for c in ("movie_id", "title", "genres"))
    rules: list[tuple[pl.Expr, str, pl.Expr]] = [
        (blank, "malformed_line", pl.lit("the line is empty")),
        (pl.col("movie_id_v").is_null(), "not_a_number", pl.format("movie_id {} is not an integer", _shown(pl.col("movie_id")))),
        (pl.col("movie_id_v") < 1, "out_of_range", pl.format("movie_id {} is not positive", pl.col("movie_id"))),
        (
            (pl.col("year_v") < MIN_MOVIE_YEAR) | (pl.col("year_v") > MAX_MOVIE_YEAR),
            "out_of_range",
            pl.format("movie {} has year {}, outside {}-{}", pl.col("movie_id"), pl.col("year_v"), pl.lit(MIN_MOVIE_YEAR), pl.lit(MAX_MOVIE_YEAR)),
        ),
        (
            pl.col("title_v").is_null() | (pl.col("title_v") == ""),
            "missing_value",
            pl.format("movie {} has no title", pl.col("movie_id")),
        ),
    ]
    reason, detail = _first_reason(rules)
    checked = parsed.with_row_index("_order").with_columns(reason=reason, detail=detail)
    valid = checked.filter(pl.col("reason").is_null())
    duplicate = pl.int_range(pl.len()).over("movie_id_v") > 0
    valid = valid.with_columns(
        reason=pl.when(duplicate).then(pl.lit("duplicate")),
        detail=pl.when(duplicate).then(pl.format("movie_id {} appears more than once; the first is kept", pl.col("movie_id_v"))),
    )
    everything = pl.concat([checked.filter(pl.col("reason").is_not_null()), valid]).sort("_order")
    clean = everything.filter(pl.col("reason").is_null()).select(
        pl.col("movie_id_v").alias("movie_id"),
        pl.col("title_v").alias("title"),
        pl.col("year_v").alias("year"),
        pl.col("genres_v").alias("genres"),
    )
    rejects = everything.filter(pl.col("reason").is_not_null()).select(MOVIE_REJECT_COLUMNS)
    return Cleaned(clean=clean, rejects=rejects)
