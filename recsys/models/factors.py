"""Latent movie factors, and each user's factors folded in at event time from their earlier ratings.

Why: the genre towers describe a user by per-genre means, which reach the user+item-bias baseline
and no further on real MovieLens (RMSE 0.976 on MovieLens 100K's replay, the same as the bias
with its user term at event time). A latent-factor model goes further, but a user vector
learned in training is stale in a replay: most of a day's ratings come from users whose history
began that same day. So the movie side is learned (alternating least squares on the history, at
every full training) and the user side is solved at event time: the ridge regression of the
user's earlier ratings on their movies' factors, from every rating strictly before the one
predicted (same-second ratings excluded, as for every feature). That is "folding in" a user,
what ALS does for one user given the movies, recomputed as each rating arrives. In an offline
probe of MovieLens 100K's replay (hyper-parameters chosen on the bootstrap's last 10,000 rows)
it scored RMSE 0.949 against the event-time bias's 0.976.

Everything is relative to each example's global mean (`rating - global_mean`), the number the
model adds its output to, so the factors need no mean of their own. With z_i = [q_i, 1]:

    prediction = global_mean + b_i + z_i . x_u(t),   x_u(t) = (sum z_j z_j^T + R)^-1 sum z_j y_j

over the user's ratings j before t, y_j = rating_j - global_mean_j - b_j, R a diagonal ridge (a
user without ratings gets x = 0). In the rating model (`network.build_model`) the user tower's
vector ends with [x_u, 1] and the movie tower's with [q_i, 1, b_i], so their dot product adds
exactly this to what the towers learn; the towers then learn the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse

from recsys.errors import RecsysError
from recsys.models.ids import id_positions, positions_in

# Rows of history whose running sums are taken at once when folding in users (memory: about 300
# bytes a row at 5 factors). Small, so a slice's sums stay in the CPU's caches: a weekly
# retrain's 2M-example window against a 6M history took 9-10 s in slices of 2M rows, 4.3 s in
# 500k, 3.8 s in 50k (by hand, the same vectors to 6e-8).
FOLD_IN_CHUNK_ROWS = 50_000
FOLD_IN_COLUMNS = ["user_id", "movie_id", "rating", "global_mean", "timestamp"]


@dataclass(frozen=True)
class FactorSettings:
    """The factor model's size and ridges (fitted on MovieLens 100K's bootstrap: its first 40,000
    rows predicting the last 10,000 at event time; figures in the module docstring)."""

    factors: int = 5
    factor_reg: float = 8.0  # ALS ridge on user and movie factors
    user_bias_reg: float = 5.0  # ALS ridge on user biases
    movie_bias_reg: float = 3.0  # ALS ridge on movie biases
    iterations: int = 15
    fold_in_reg: float = 5.0  # the event-time solve's ridge on the factors
    fold_in_bias_reg: float = 12.0  # and on the user's bias
    seed: int = 0

    @property
    def width(self) -> int:
        """Columns of a user's folded-in vector and of a movie's factor row: k factors, the bias
        slot and the constant."""
        return self.factors + 2


@dataclass(frozen=True)
class MovieFactors:
    """Each fitted movie's row [q (k), 1, b_i], by id (sorted); other movies have none."""

    movie_ids: np.ndarray  # (m,) int64, sorted
    rows: np.ndarray  # (m, k + 2) float32
    # The alternating fit's state, which lets a warm start carry it forward from the users who
    # rated since (`update_movie_factors`): each user's last solve [p_u, b_u] (by id, sorted), and
    # each movie's sums over its ratings (upper triangle of sum z z^T and sum z y, z = [p_u, 1],
    # y = rating - global_mean - b_u), from which its row was solved. None in factors saved
    # before the state was kept.
    user_ids: np.ndarray | None = None  # (n,) int64, sorted
    user_side: np.ndarray | None = None  # (n, k + 1) float64 (float32 once saved)
    movie_sums: np.ndarray | None = None  # (m, (k + 1)(k + 2) / 2 + k + 1), rows as movie_ids, as user_side

    @property
    def has_fit_state(self) -> bool:
        return self.user_side is not None and self.movie_sums is not None

    @classmethod
    def empty(cls, settings: FactorSettings) -> MovieFactors:
        """No movie has factors (what a movie nobody rated gets from any fit)."""
        return cls(movie_ids=np.zeros(0, dtype=np.int64), rows=np.zeros((0, settings.width), dtype=np.float32))

    def positions(self, movie_ids: np.ndarray) -> np.ndarray:
        """Each movie's position in `rows`, -1 for movies without factors."""
        return positions_in(self.movie_ids, movie_ids)

    def lookup(self, movie_ids: np.ndarray) -> np.ndarray:
        """Rows for `movie_ids`, zeros for movies without factors (they then add nothing)."""
        return self.rows_at(self.positions(movie_ids))

    def rows_at(self, positions: np.ndarray) -> np.ndarray:
        """Rows at `positions` (from `positions`), zeros where it is -1."""
        out = np.zeros((len(positions), self.rows.shape[1]), dtype=np.float32)
        out[positions >= 0] = self.rows[positions[positions >= 0]]
        return out


def _upper(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a width x width matrix's upper triangle, diagonal included."""
    return np.triu_indices(width)


def _solve(gram_upper: np.ndarray, moment: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """Batched (gram + diag(ridge))^-1 moment for n systems of size d; the grams are given by
    their upper triangles, a row per entry (d (d + 1) / 2, n), the moments as (d, n)."""
    d, n = len(ridge), gram_upper.shape[1]
    gram = np.empty((d, d, n))  # filled a contiguous row at a time, then viewed as (n, d, d)
    for index, (a, b) in enumerate(zip(*_upper(d))):
        gram[a, b] = gram_upper[index]
        gram[b, a] = gram_upper[index]
        if a == b:
            gram[a, a] += ridge[a]
    return np.linalg.solve(gram.transpose(2, 0, 1), moment.T[:, :, None])[:, :, 0]


def _sums(ratings: sparse.csr_matrix, residual: sparse.csr_matrix, other: np.ndarray) -> np.ndarray:
    """For each row i of the rating matrix, the sums over its ratings of z z^T (upper triangle)
    and z y, given the other side's z rows (n_other, d): (rows, d (d + 1) / 2 + d). They are
    sparse-dense products: the 0/1 rating matrix times each z's outer product, the residual
    matrix times z."""
    rows, columns = _upper(other.shape[1])
    outer = other[:, rows] * other[:, columns]  # (n_other, d (d + 1) / 2)
    return np.hstack([ratings @ outer, residual @ other])


def _solve_sums(sums: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """The ridge solutions (sum z z^T + ridge)^-1 sum z y of `_sums`' rows."""
    pairs = sums.shape[1] - len(ridge)
    return _solve(np.ascontiguousarray(sums[:, :pairs].T), np.ascontiguousarray(sums[:, pairs:].T), ridge)


def _half_step(ratings: sparse.csr_matrix, residual: sparse.csr_matrix, other: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """One side's ridge solutions given the other side's z rows (n_other, d): for each row i of the
    rating matrix, (sum over its ratings of z z^T + ridge)^-1 sum z y."""
    return _solve_sums(_sums(ratings, residual, other), ridge)


def fit_movie_factors(
    ratings: pl.DataFrame, settings: FactorSettings, start: MovieFactors | None = None, iterations: int | None = None
) -> MovieFactors:
    """Movie factors q_i and biases b_i of rating - global_mean ~ b_u + b_i + p_u . q_i, by
    alternating ridge regressions over `ratings` (user_id, movie_id, rating, global_mean): each
    half-step solves every user (or movie) at once, batched (k+1)x(k+1) solves over sparse sums.
    Movie factors start N(0, 0.1) from the seed (or from `start`'s, for the movies it has: a warm
    start), user factors at 0; `iterations` defaults to the settings'."""
    missing = [c for c in ("user_id", "movie_id", "rating", "global_mean") if c not in ratings.columns]
    if missing:
        raise RecsysError(f"The ratings to fit movie factors on lack the column(s) {', '.join(missing)}.")
    if ratings.height == 0:
        raise RecsysError("The ratings to fit movie factors on are empty.")
    k = settings.factors
    users, user_ids = id_positions(ratings["user_id"])
    movies, movie_ids = id_positions(ratings["movie_id"])
    centered = (ratings["rating"].cast(pl.Float64) - ratings["global_mean"].cast(pl.Float64)).to_numpy()
    n_users, n_movies = int(users.max()) + 1, len(movie_ids)
    rated = sparse.csr_matrix((np.ones(len(users)), (users, movies)), shape=(n_users, n_movies))
    rated_t = rated.T.tocsr()
    rng = np.random.default_rng(settings.seed)
    movie_side = np.column_stack([rng.normal(0.0, 0.1, (n_movies, k)), np.zeros(n_movies)])  # [q_i, b_i]
    if start is not None:
        known = np.isin(movie_ids, start.movie_ids)
        previous = start.lookup(movie_ids[known])
        movie_side[known] = np.column_stack([previous[:, :k], previous[:, k + 1]])
    user_side = np.zeros((n_users, k + 1))  # [p_u, b_u]
    user_ridge, movie_ridge = _ridges(settings)

    def movie_sums() -> np.ndarray:
        # Movies given users: y = centered - b_u, regressed on [p_u, 1].
        residual = sparse.csr_matrix((centered - user_side[users, k], (movies, users)), shape=(n_movies, n_users))
        return _sums(rated_t, residual, np.column_stack([user_side[:, :k], np.ones(n_users)]))

    sums = None
    for _ in range(settings.iterations if iterations is None else iterations):
        # Users given movies: y = centered - b_i, regressed on [q_i, 1].
        residual = sparse.csr_matrix((centered - movie_side[movies, k], (users, movies)), shape=(n_users, n_movies))
        user_side = _half_step(rated, residual, np.column_stack([movie_side[:, :k], np.ones(n_movies)]), user_ridge)
        sums = movie_sums()
        movie_side = _solve_sums(sums, movie_ridge)
    if sums is None:  # no pass: the sums of the users as they stand
        sums = movie_sums()
    rated_users = np.bincount(users, minlength=n_users) > 0
    rated_movies = np.bincount(movies, minlength=n_movies) > 0  # positions may include ids nobody rated
    rows = np.column_stack([movie_side[:, :k], np.ones(n_movies), movie_side[:, k]])[rated_movies].astype(np.float32)
    return MovieFactors(
        movie_ids=movie_ids[rated_movies].astype(np.int64), rows=rows, user_ids=user_ids[rated_users].astype(np.int64),
        user_side=user_side[rated_users], movie_sums=sums[rated_movies],
    )  # fmt: skip


def _ridges(settings: FactorSettings) -> tuple[np.ndarray, np.ndarray]:
    """The ALS ridges of the user side [p_u, b_u] and of the movie side [q_i, b_i]."""
    k = settings.factors
    return (
        np.r_[np.full(k, settings.factor_reg), settings.user_bias_reg],
        np.r_[np.full(k, settings.factor_reg), settings.movie_bias_reg],
    )


def _rating_terms(side: np.ndarray, centered: np.ndarray) -> np.ndarray:
    """Each rating's terms of its movie's sums, from its user's side [p_u, b_u]: the upper
    triangle of z z^T and z y, z = [p_u, 1], y = centered - b_u; (width, ratings), a row per
    component (`_sum_terms`)."""
    z = np.vstack([side[:, :-1].T, np.ones(len(side))])
    return _sum_terms(z, centered - side[:, -1])


def update_movie_factors(factors: MovieFactors, settings: FactorSettings, history: pl.DataFrame, after_batch: int) -> MovieFactors:
    """The alternating fit carried forward by the users who rated after batch `after_batch`:
    `history` holds all their ratings (user_id, movie_id, rating, global_mean, batch), those up
    to `after_batch` being in `factors`' sums already. Each of them is solved again from all
    their ratings given the movies, their earlier ratings' terms in the movies' sums are replaced
    by the new ones (their new ratings' added), and every movie they rated is solved again.

    Why: a pass of the fit over the whole history costs what the history does (about 2 s a day
    at 5M ratings on a 2-core CPU, growing with the archive); this is the same alternating least
    squares with its users' half-step restricted to the ones with new ratings, at what their
    ratings cost. The other users' sides are where the fit left them, as their ratings are.
    """
    if not factors.has_fit_state:
        raise RecsysError("These movie factors were saved without their fit's state: fit them again to update them.")
    k = settings.factors
    user_ridge, movie_ridge = _ridges(settings)
    if history.height == 0:
        return factors
    user_ids, users = np.unique(history["user_id"].cast(pl.Int64).to_numpy(), return_inverse=True)
    rated_ids = history["movie_id"].cast(pl.Int64).to_numpy()
    movie_ids = np.union1d(factors.movie_ids, rated_ids)
    movies = np.searchsorted(movie_ids, rated_ids)
    known = np.searchsorted(movie_ids, factors.movie_ids)
    sums = np.zeros((len(movie_ids), factors.movie_sums.shape[1]))
    sums[known] = factors.movie_sums
    movie_side = np.zeros((len(movie_ids), k + 1))  # a movie new to the fit starts at 0
    movie_side[known] = np.column_stack([factors.rows[:, :k], factors.rows[:, k + 1]])
    centered = (history["rating"].cast(pl.Float64) - history["global_mean"].cast(pl.Float64)).to_numpy()

    # Their earlier ratings' terms, with the sides they were added with, come out.
    earlier = history["batch"].to_numpy() <= after_batch
    where = positions_in(factors.user_ids, user_ids)
    found = where >= 0
    if not found[np.unique(users[earlier])].all():
        raise RecsysError("The movie factors' state lacks users whose earlier ratings it should hold.")
    old_side = np.zeros((len(user_ids), k + 1))
    old_side[found] = factors.user_side[where[found]]
    _add_by_movie(sums, movies[earlier], _rating_terms(old_side[users[earlier]], centered[earlier]), sign=-1.0)
    # Users given movies, from all their ratings; then their terms go in with the new sides.
    shape = (len(user_ids), len(movie_ids))
    rated = sparse.csr_matrix((np.ones(len(users)), (users, movies)), shape=shape)
    residual = sparse.csr_matrix((centered - movie_side[movies, k], (users, movies)), shape=shape)
    new_side = _half_step(rated, residual, np.column_stack([movie_side[:, :k], np.ones(len(movie_ids))]), user_ridge)
    _add_by_movie(sums, movies, _rating_terms(new_side[users], centered))
    # Movies given users: the ones these users rated.
    touched = np.unique(movies)
    movie_side[touched] = _solve_sums(sums[touched], movie_ridge)

    count = sums[:, len(_upper(k + 1)[0]) - 1]  # the (1, 1) entry of sum z z^T: the movie's ratings
    kept = count > 0.5
    all_users = np.union1d(factors.user_ids, user_ids)
    side = np.zeros((len(all_users), k + 1))
    side[np.searchsorted(all_users, factors.user_ids)] = factors.user_side
    side[np.searchsorted(all_users, user_ids)] = new_side
    rows = np.column_stack([movie_side[:, :k], np.ones(len(movie_ids)), movie_side[:, k]])[kept].astype(np.float32)
    return MovieFactors(
        movie_ids=movie_ids[kept], rows=rows, user_ids=all_users, user_side=side, movie_sums=sums[kept]
    )


def _add_by_movie(sums: np.ndarray, movies: np.ndarray, terms: np.ndarray, sign: float = 1.0) -> None:
    """sums[movie] += sign * each rating's terms (a row per component), summed per movie."""
    for column, component in enumerate(terms):
        sums[:, column] += sign * np.bincount(movies, weights=component, minlength=len(sums))


def _terms(factors: MovieFactors, settings: FactorSettings, positions: np.ndarray, centered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each rating's z = [q, 1] (zeros for a movie without factors, which then adds nothing) and
    y = rating - global_mean - b_i, from its movie's position (`MovieFactors.positions`) and its
    rating - global_mean; z is (k + 1, rows), a row per component."""
    k = settings.factors
    rows = factors.rows_at(positions)
    return np.ascontiguousarray(rows[:, : k + 1].T, dtype=np.float64), centered - rows[:, k + 1]


def _fold_in_ridge(settings: FactorSettings) -> np.ndarray:
    return np.r_[np.full(settings.factors, settings.fold_in_reg), settings.fold_in_bias_reg]


def _with_constant(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))]).astype(np.float32)


def _sum_terms(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(upper triangle of z z^T, z y) per rating, a row per component: (d (d + 1) / 2 + d, rows)."""
    rows, columns = _upper(z.shape[0])
    terms = np.empty((len(rows) + z.shape[0], z.shape[1]))
    for index, (a, b) in enumerate(zip(rows, columns)):
        np.multiply(z[a], z[b], out=terms[index])
    np.multiply(z, y, out=terms[len(rows) :])
    return terms


def fold_in(
    factors: MovieFactors, settings: FactorSettings, history: pl.DataFrame, rows: np.ndarray | None = None
) -> np.ndarray:
    """Each rating of `history` (user_id, movie_id, rating, global_mean, timestamp), or only its
    rows at positions `rows`: its user's vector [x_u (k + 1), 1] solved from the user's ratings in
    `history` strictly before its second, so a rating never sees itself nor another of its
    second. Returns float32 (history rows, k + 2) in `history`'s order, or (len(rows), k + 2) in
    `rows`' order.

    Sorted by user and time, each rating's sums are the user's running sums up to the first rating
    of its second; a long history goes in slices of about FOLD_IN_CHUNK_ROWS rows, cut between
    users. With `rows` (a day's examples against its users' history, a weekly retrain's latest
    examples against every rating), only those rows are solved for, and a user's ratings before
    the first second among their rows count alike for all of them: they are summed per user with
    two sparse products (`_user_sums`) and only the rest go through the running sums. At
    MovieLens-32M's shape a day's rows are a seventh of its users' history, a retrain's 2M
    examples a third of a 6M history and a sixteenth of the archive's.
    """
    missing = [c for c in FOLD_IN_COLUMNS if c not in history.columns]
    if missing:
        raise RecsysError(f"The history to fold users in from lacks the column(s) {', '.join(missing)}.")
    out = np.empty((history.height, settings.width), dtype=np.float32)
    if history.height == 0 or (rows is not None and len(rows) == 0):
        return out if rows is None else out[rows]
    users = history["user_id"].cast(pl.Int64).to_numpy()
    timestamps = history["timestamp"].cast(pl.Int64).to_numpy()
    positions = factors.positions(history["movie_id"].to_numpy())
    centered = (history["rating"].cast(pl.Float64) - history["global_mean"].cast(pl.Float64)).to_numpy()
    if rows is None:
        wanted, running, user_row, earlier = np.ones(history.height, dtype=bool), np.arange(history.height), None, None
    else:
        wanted = np.zeros(history.height, dtype=bool)
        wanted[rows] = True
        row_users, of_row = np.unique(users[rows], return_inverse=True)
        first_second = np.full(len(row_users), np.iinfo(np.int64).max)
        np.minimum.at(first_second, of_row, timestamps[rows])
        user_row = positions_in(row_users, users)
        of_row_users = user_row >= 0
        before_first = of_row_users & (timestamps < first_second[user_row])
        earlier = _user_sums(factors, settings, user_row[before_first], positions[before_first], centered[before_first], len(row_users))
        running = np.flatnonzero(of_row_users & ~before_first)
    order = running[np.lexsort((timestamps[running], users[running]))]
    users, timestamps = users[order], timestamps[order]
    user_start = np.r_[True, users[1:] != users[:-1]]
    second_start = user_start | np.r_[True, timestamps[1:] != timestamps[:-1]]
    cuts = np.flatnonzero(user_start)
    bounds = [0, *cuts[np.searchsorted(cuts, np.arange(FOLD_IN_CHUNK_ROWS, len(order), FOLD_IN_CHUNK_ROWS))], len(order)]
    pairs = len(_upper(settings.factors + 1)[0])
    ridge = _fold_in_ridge(settings)
    for first, last in zip(bounds[:-1], bounds[1:]):
        if first >= last:
            continue
        picked = order[first:last]
        terms = _sum_terms(*_terms(factors, settings, positions[picked], centered[picked]))
        before = np.cumsum(terms, axis=1)
        before -= terms  # sums over the slice's ratings before each one
        index = np.arange(last - first)
        user_first = np.maximum.accumulate(np.where(user_start[first:last], index, 0))
        second_first = np.maximum.accumulate(np.where(second_start[first:last], index, 0))
        solved = np.flatnonzero(wanted[picked])
        sums = np.take(before, second_first[solved], axis=1)
        sums -= np.take(before, user_first[solved], axis=1)
        if earlier is not None:
            sums += earlier[user_row[picked[solved]]].T
        out[picked[solved]] = _with_constant(_solve(sums[:pairs], sums[pairs:], ridge))
    return out if rows is None else out[rows]


def _user_sums(
    factors: MovieFactors, settings: FactorSettings, user_rows: np.ndarray, positions: np.ndarray, centered: np.ndarray,
    n_users: int,
) -> np.ndarray:
    """For each of `n_users` users, the sums of `_sum_terms` over their ratings (user_rows, the
    movies' `positions`, rating - global_mean), as `_sums` gives them: (n_users, terms), from
    sparse products over the movies' z, so the cost is the ratings', not a term per rating; a
    movie without factors adds nothing."""
    k = settings.factors
    known = positions >= 0
    user_rows, positions = user_rows[known], positions[known]
    y = centered[known] - factors.rows[positions, k + 1]
    shape = (n_users, len(factors.movie_ids))
    counts = sparse.csr_matrix((np.ones(len(positions)), (user_rows, positions)), shape=shape)
    residuals = sparse.csr_matrix((y, (user_rows, positions)), shape=shape)
    return _sums(counts, residuals, factors.rows[:, : k + 1].astype(np.float64))  # z = [q, 1] per movie


def fold_in_latest(factors: MovieFactors, settings: FactorSettings, history: pl.DataFrame, user_ids: np.ndarray) -> np.ndarray:
    """Each of `user_ids`' vector from all their ratings in `history` (user_id, movie_id, rating,
    global_mean; as of its end), in `user_ids`' order (`_user_sums`: no per-rating terms)."""
    missing = [c for c in FOLD_IN_COLUMNS[:-1] if c not in history.columns]
    if missing:
        raise RecsysError(f"The history to fold users in from lacks the column(s) {', '.join(missing)}.")
    wanted = pl.DataFrame({"user_id": np.asarray(user_ids, dtype=np.int64)}).with_row_index("user_row")
    rated = history.select(
        pl.col("user_id").cast(pl.Int64), pl.col("movie_id").cast(pl.Int64), (pl.col("rating") - pl.col("global_mean")).alias("centered")
    ).join(wanted, on="user_id")
    positions = factors.positions(rated["movie_id"].to_numpy())
    sums = _user_sums(factors, settings, rated["user_row"].to_numpy(), positions, rated["centered"].to_numpy(), len(user_ids))
    return _with_constant(_solve_sums(sums, _fold_in_ridge(settings)))


def user_factor_columns(settings: FactorSettings) -> list[str]:
    return [f"user_factor_{i}" for i in range(settings.width)]


def movie_factor_columns(settings: FactorSettings) -> list[str]:
    return [f"movie_factor_{i}" for i in range(settings.width)]


def with_user_factors(frame: pl.DataFrame, vectors: np.ndarray, settings: FactorSettings) -> pl.DataFrame:
    """`frame` with its rows' folded-in user vectors (from `fold_in` or `fold_in_latest`) as columns."""
    if vectors.shape != (frame.height, settings.width):
        raise RecsysError(f"{vectors.shape[0]} user vectors of width {vectors.shape[1]} do not fit {frame.height} rows of width {settings.width}.")
    return frame.with_columns(pl.Series(name, vectors[:, i]) for i, name in enumerate(user_factor_columns(settings)))


def with_no_history(frame: pl.DataFrame, settings: FactorSettings) -> pl.DataFrame:
    """`frame` with the user vector of users without ratings: x = 0 and the constant."""
    vectors = np.zeros((frame.height, settings.width), dtype=np.float32)
    vectors[:, -1] = 1.0
    return with_user_factors(frame, vectors, settings)


def with_movie_factors(frame: pl.DataFrame, factors: MovieFactors, settings: FactorSettings) -> pl.DataFrame:
    """`frame` (with movie_id) with each movie's factor row as columns (zeros where it has none)."""
    rows = factors.lookup(frame["movie_id"].to_numpy())
    return frame.with_columns(pl.Series(name, rows[:, i]) for i, name in enumerate(movie_factor_columns(settings)))
