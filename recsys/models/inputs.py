"""Feature frames to the model's float32 input matrices.

Why shrinkage in the inputs: in a replay many ratings of a new day come from users with little or
no history, and a genre mean over two ratings is mostly noise. Every mean is shrunk toward a
prior, (count * mean + k * prior) / (count + k): a genre mean toward the user's own mean, the
user's mean toward the global mean, a movie's mean toward the global mean. A user without history
thus gets the global mean everywhere (all relative inputs 0), which is well defined, and log1p
counts tell the tower how much evidence stands behind each mean.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.features.point_in_time import EXAMPLE_FEATURES, GENRE_FLAGS
from recsys.genres import GENRE_SLUGS
from recsys.models.factors import movie_factor_columns, user_factor_columns
from recsys.models.config import (
    GLOBAL_MEAN_INPUT,
    LOG_COUNT_SCALE,
    MOVIE_FACTORS_INPUT,
    MOVIE_ID_INPUT,
    MOVIE_INPUT,
    MOVIE_INPUT_COLUMNS,
    USER_FACTORS_INPUT,
    USER_ID_INPUT,
    USER_INPUT,
    USER_INPUT_COLUMNS,
    ModelConfig,
)


def _shrunk(count: np.ndarray, mean: np.ndarray, prior: np.ndarray, k: np.float32) -> np.ndarray:
    """(count * mean + k * prior) / (count + k): the mean, pulled toward its prior when count is small."""
    return (count * mean + k * prior) / (count + k)


def as_matrix(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as one float32 (n, len(columns)) array (column-major, as Polars gives it)."""
    return frame.select(pl.col(columns).cast(pl.Float32)).to_numpy().reshape(frame.height, len(columns))


def user_inputs(frame: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The user tower's float32 input matrix from global_mean, u_count, u_mean, ug_count_*, ug_mean_*.

    numpy writes straight into a preallocated matrix: Polars' log1p over 19 integer columns was
    ~10x slower, and the temporaries of a naive version doubled the time at 5M rows.
    """
    n, genres = frame.height, len(GENRE_SLUGS)
    k, scale = np.float32(config.shrinkage), np.float32(LOG_COUNT_SCALE)
    global_mean = as_matrix(frame, ["global_mean"])  # (n, 1): broadcasts against (n, 19)
    user_count = as_matrix(frame, ["u_count"])
    user_mean = _shrunk(user_count, as_matrix(frame, ["u_mean"]), global_mean, k)
    user = np.empty((n, len(USER_INPUT_COLUMNS)), dtype=np.float32)
    np.subtract(user_mean, global_mean, out=user[:, 0:1])
    np.multiply(np.log1p(user_count), scale, out=user[:, 1:2])
    genre_count = as_matrix(frame, [f"ug_count_{s}" for s in GENRE_SLUGS])
    genre_mean = user[:, 2 : 2 + genres]  # the shrunk genre means, computed in place
    np.multiply(genre_count, as_matrix(frame, [f"ug_mean_{s}" for s in GENRE_SLUGS]), out=genre_mean)
    genre_mean += k * user_mean
    genre_mean /= genre_count + k
    genre_mean -= global_mean
    genre_log_count = user[:, 2 + genres :]
    np.log1p(genre_count, out=genre_log_count)
    genre_log_count *= scale
    return user


def movie_inputs(frame: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The movie tower's float32 input matrix from global_mean, m_count, m_mean and the static
    movie features (genre flags, m_no_genre, m_year_z, m_year_known)."""
    k, scale = np.float32(config.shrinkage), np.float32(LOG_COUNT_SCALE)
    static = [*GENRE_FLAGS, "m_no_genre", "m_year_z", "m_year_known"]
    global_mean = as_matrix(frame, ["global_mean"])
    movie_count = as_matrix(frame, ["m_count"])
    movie_mean = _shrunk(movie_count, as_matrix(frame, ["m_mean"]), global_mean, k)
    movie = np.empty((frame.height, len(MOVIE_INPUT_COLUMNS)), dtype=np.float32)
    movie[:, : len(static)] = as_matrix(frame, static)
    np.subtract(movie_mean, global_mean, out=movie[:, len(static) : len(static) + 1])
    np.multiply(np.log1p(movie_count), scale, out=movie[:, len(static) + 1 :])
    return movie


def model_inputs(examples: pl.DataFrame, config: ModelConfig) -> dict[str, np.ndarray]:
    """The model's three float32 inputs for examples with the `EXAMPLE_FEATURES` columns (~2 s per 5M)."""
    missing = [c for c in EXAMPLE_FEATURES if c not in examples.columns]
    if missing:
        raise RecsysError(f"The examples lack the feature column(s) {', '.join(missing)} the model reads.")
    inputs = {
        USER_INPUT: user_inputs(examples, config),
        MOVIE_INPUT: movie_inputs(examples, config),
        GLOBAL_MEAN_INPUT: np.ascontiguousarray(as_matrix(examples, ["global_mean"])),
    }
    if config.id_dim:
        inputs[USER_ID_INPUT] = id_inputs(examples, "user_id")
        inputs[MOVIE_ID_INPUT] = id_inputs(examples, "movie_id")
    if config.factors:
        inputs[USER_FACTORS_INPUT] = factor_inputs(examples, config, "user")
        inputs[MOVIE_FACTORS_INPUT] = factor_inputs(examples, config, "movie")
    return inputs


def factor_inputs(frame: pl.DataFrame, config: ModelConfig, side: str) -> np.ndarray:
    """The factor model's slots of one tower (float32): a user's folded-in vector or a movie's
    factor row, attached to the frame by `recsys.models.factors` (with_user_factors,
    with_no_history, with_movie_factors)."""
    columns = (user_factor_columns if side == "user" else movie_factor_columns)(config.factor_settings())
    if columns[0] not in frame.columns:
        raise RecsysError(
            f"The frame lacks the {side} factor columns the model reads: attach them with recsys.models.factors first."
        )
    return np.ascontiguousarray(as_matrix(frame, columns))


def id_inputs(frame: pl.DataFrame, column: str) -> np.ndarray:
    """The ids the hashed ID embeddings look up (int64)."""
    if column not in frame.columns:
        raise RecsysError(f"The frame lacks the column {column} the model's ID embeddings read.")
    return frame[column].cast(pl.Int64).to_numpy()



def rating_targets(examples: pl.DataFrame) -> np.ndarray:
    return examples["rating"].cast(pl.Float32).to_numpy().astype(np.float32, copy=False)

