"""The genre vocabulary every layer shares: MovieLens' 19 genres, in one fixed order.

The order is the order of the genre columns in features and model inputs, so it never changes;
a genre outside it is kept in the lake's text but has no feature column.
"""

from __future__ import annotations

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

# How the MovieLens files say a movie has no genre.
NO_GENRES = "(no genres listed)"


def slug(genre: str) -> str:
    """A column-name form of a genre: "Sci-Fi" -> "sci_fi"."""
    return genre.lower().replace("-", "_")


GENRE_SLUGS: tuple[str, ...] = tuple(slug(g) for g in GENRES)
