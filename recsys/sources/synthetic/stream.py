"""The synthetic rating stream: ratings drawn in time order, chunk by chunk, with their exact error expectations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.genres import GENRES
from recsys.sources.synthetic.moments import rating_moments
from recsys.sources.synthetic.population import initial_count, rng_for

# Redraw only the movie of a repeated (user, movie) pair this many times before also redrawing
# the user (that user may have rated nearly every movie present so far); the first
# _FOCUSED_REDRAWS of them keep the session's focal genre, the rest draw from the whole catalog
# (the user may have rated most of a small genre), so sessions stay whole.
_MOVIE_REDRAWS = 16
_FOCUSED_REDRAWS = 4
_MAX_REDRAW_ROUNDS = 2_000


def write_ratings(
    path: Path, n_ratings: int, seed: int, settings: dict[str, Any], population: dict[str, Any]
) -> dict[str, Any]:
    """Append ratings chunk by chunk; accumulate the exact error expectations as we go."""
    # Everyone who may rate, the drift scenarios' newcomers included.
    n_users, n_movies = population["user_bias"].size, population["item_bias"].size
    chunk_size = int(settings["chunk_size"])
    sigma_noise = float(settings["sigma_noise"])
    mu = float(settings["mu"])
    initial_users = initial_count(settings["n_users"], settings["initial_user_fraction"])
    initial_movies = initial_count(settings["n_movies"], settings["initial_movie_fraction"])

    floor_sum = 0.0
    prior_sum = 0.0
    # Per-user sums of d = E[r|m] - (mu + b_u + b_i): the best per-user offset is their mean.
    offset_sum = np.zeros(n_users)
    offset_square_sum = np.zeros(n_users)
    user_counts = np.zeros(n_users, dtype=np.int64)
    movie_rated = np.zeros(n_movies, dtype=bool)
    last_timestamp = int(settings["start_timestamp"])
    first_timestamp = last_timestamp
    # Sorted keys user * n_movies + movie of every pair written so far (unique_pairs only).
    written_pairs = np.empty(0, dtype=np.int64)

    sessions = _SessionStream(settings, population, n_ratings, initial_users) if settings["sessions"] else None
    user_arrivals = [a for a in population["arrivals"] if a["kind"] == "new_population"]
    movie_arrivals = [a for a in population["arrivals"] if a["kind"] == "catalog_growth"]
    genre_focus = float(settings["genre_focus"])

    with path.open("wb") as file:
        for chunk, start in enumerate(range(0, n_ratings, chunk_size)):
            rng = rng_for(seed, 1, chunk)
            index = np.arange(start, min(start + chunk_size, n_ratings), dtype=np.int64)
            size = index.size
            if sessions is not None:
                users, focus = sessions.draw(rng, index, user_arrivals)
            else:
                users = _draw_arrived(rng, index, n_ratings, initial_users, population["user_cumulative_weight"])
                _newcomers(rng, index, users, user_arrivals)
                focus = _focal_genres(rng, users, settings, population)

            def draw_movies(positions: np.ndarray, focused: bool = True) -> np.ndarray:
                return _draw_movies(
                    rng, index[positions], focus[positions], n_ratings, initial_movies, population,
                    genre_focus if focused else 0.0,
                )  # fmt: skip

            movies = draw_movies(np.arange(size))
            _newcomers(rng, index, movies, movie_arrivals)
            if settings["unique_pairs"]:
                users, movies, chunk_pairs = _redraw_repeated_pairs(
                    rng,
                    users,
                    movies,
                    written_pairs,
                    n_ratings,
                    draw_users=lambda positions: _draw_arrived(
                        rng, index[positions], n_ratings, initial_users, population["user_cumulative_weight"]
                    ),
                    draw_movies=draw_movies,
                    n_users=population["user_cumulative_weight"].size,
                    n_movies=n_movies,
                )
                written_pairs = _merge_sorted(written_pairs, chunk_pairs)

            gaps = rng.poisson(settings["mean_gap_seconds"], size)
            if chunk == 0:
                gaps[0] = 0  # the first rating is at start_timestamp exactly
            timestamps = last_timestamp + np.cumsum(gaps)
            last_timestamp = int(timestamps[-1])

            base = mu + population["user_bias"][users] + population["item_bias"][movies]
            latent = base + _genre_term(users, movies, population) + _drift_term(index, movies, settings["drift"], population)
            noisy = latent + rng.normal(0.0, sigma_noise, size)
            ratings = np.clip(np.round(noisy * 2.0) / 2.0, 0.5, 5.0)

            pl.DataFrame(
                {"userId": users + 1, "movieId": movies + 1, "rating": ratings, "timestamp": timestamps}
            ).write_csv(file, include_header=chunk == 0, float_precision=1)

            mean, second = rating_moments(latent, sigma_noise)
            variance = np.maximum(second - mean * mean, 0.0)
            offset = mean - base
            floor_sum += float(variance.sum())
            prior_sum += float((variance + offset * offset).sum())
            offset_sum += np.bincount(users, weights=offset, minlength=n_users)
            offset_square_sum += np.bincount(users, weights=offset * offset, minlength=n_users)
            user_counts += np.bincount(users, minlength=n_users)
            movie_rated[movies] = True

    rated = user_counts > 0
    # sum over a user's ratings of (d - mean d)^2 = sum d^2 - (sum d)^2 / n
    bias_residual = float(
        (offset_square_sum[rated] - offset_sum[rated] ** 2 / user_counts[rated]).sum()
    )
    return {
        "noise_floor_mse": floor_sum / n_ratings,
        "oracle_bias_mse": (floor_sum + bias_residual) / n_ratings,
        "oracle_bias_prior_mse": prior_sum / n_ratings,
        "n_users_rated": int(rated.sum()),
        "n_sessions": sessions.count if sessions is not None else None,
        "n_movies_rated": int(movie_rated.sum()),
        "first_timestamp": first_timestamp,
        "last_timestamp": last_timestamp,
    }


def _arrived(index: np.ndarray, n_ratings: int, initial: int, size: int) -> np.ndarray:
    """How many of `size` ids have arrived at each stream position: `initial` are present from the
    start, the rest arrive evenly, the last one in time for the final rating."""
    return np.minimum(initial + (size - initial) * (index + 1) // n_ratings, size)


def _draw_prefix(rng: np.random.Generator, arrived: np.ndarray, cumulative_weight: np.ndarray) -> np.ndarray:
    """0-based ids drawn by weight among the first `arrived` ids, one per row.

    Drawing a uniform on [0, total weight of the arrived prefix) and locating it in the cumulative
    weights samples within each row's own prefix, vectorised.
    """
    target = rng.random(arrived.size) * cumulative_weight[arrived - 1]
    drawn = _searchsorted(cumulative_weight, target, side="right")
    return np.minimum(drawn, arrived - 1)


def _draw_arrived(
    rng: np.random.Generator,
    index: np.ndarray,
    n_ratings: int,
    initial: int,
    cumulative_weight: np.ndarray,
) -> np.ndarray:
    """0-based ids drawn by weight among those arrived by each stream position (see `_arrived`)."""
    return _draw_prefix(rng, _arrived(index, n_ratings, initial, cumulative_weight.size), cumulative_weight)


class _SessionStream:
    """The stream as a run of sessions, each one user's consecutive ratings, drawn chunk by chunk;
    the session still open at a chunk's end goes on in the next.

    Users arrive as without sessions, evenly over the stream in id order, each with a first
    session starting at the first session boundary at or after their arrival; the sessions
    between are present users', drawn by activity.
    """

    def __init__(self, settings: dict[str, Any], population: dict[str, Any], n_ratings: int, initial_users: int) -> None:
        self.settings, self.population, self.n_ratings = settings, population, n_ratings
        self.cumulative_weight = population["user_cumulative_weight"]
        self.initial = initial_users
        self.first_min = int(settings["first_session_min"])
        self.first_p = 1.0 / (float(settings["first_session_mean"]) - self.first_min + 1.0)
        self.later_mean = float(settings["session_mean"])
        self.next_new = initial_users
        self.user, self.focus, self.remaining = -1, -1, 0
        self.count = 0

    def arrival(self, users: np.ndarray) -> np.ndarray:
        """The stream position at which each (0-based) user arrives: the first index where
        `_arrived` counts them."""
        size = self.cumulative_weight.size
        return -((-(users - self.initial + 1) * self.n_ratings) // max(size - self.initial, 1)) - 1

    def draw(self, rng: np.random.Generator, index: np.ndarray, arrivals: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's user and its session's focal genre (-1: none) for stream positions `index`."""
        size, first_index = index.size, int(index[0])
        carried = min(self.remaining, size)
        users, focus = [np.full(carried, self.user)], [np.full(carried, self.focus)]
        self.remaining -= carried
        covered = carried
        while covered < size:
            later = rng.geometric(1.0 / self.later_mean, int(1.2 * (size - covered) / self.later_mean) + 16)
            due = np.arange(self.next_new, self.cumulative_weight.size)
            due_at = self.arrival(due)
            due = due[due_at < first_index + size]
            first = self.first_min - 1 + rng.geometric(self.first_p, due.size)
            is_new, lengths = _merge_sessions(first_index + covered, first_index + size, due_at[: due.size], first, later)
            starts = covered + np.cumsum(lengths) - lengths
            arrived = self.next_new + np.cumsum(is_new)
            session_users = np.where(is_new, arrived - 1, _draw_prefix(rng, arrived, self.cumulative_weight))
            # A drift scenario's newcomers take their share of the present users' sessions.
            present = session_users[~is_new]
            _newcomers(rng, index[starts[~is_new]], present, arrivals)
            session_users[~is_new] = present
            session_focus = _focal_genres(rng, session_users, self.settings, self.population)
            self.next_new = int(arrived[-1])
            self.count += int(starts.size)
            users.append(np.repeat(session_users, lengths))
            focus.append(np.repeat(session_focus, lengths))
            covered = int(starts[-1] + lengths[-1])
            if covered > size:  # the last session goes on in the next chunk
                self.user, self.focus, self.remaining = int(session_users[-1]), int(session_focus[-1]), covered - size
        return np.concatenate(users)[:size], np.concatenate(focus)[:size]


def _merge_sessions(
    position: int, end: int, arrival: np.ndarray, first: np.ndarray, later: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(is_new, length) of the sessions from stream `position` on, up to the one that reaches `end`
    or until `later` runs out: the later sessions in order, each first session (lengths `first`,
    users arriving at `arrival`, ascending) before the first later session that would start after
    its arrival. A loop over the arrivals only; the later sessions between go in slices."""
    bounds = np.concatenate([[0], np.cumsum(later)])  # later session j starts bounds[j] after the first
    flags, parts, j, i = [], [], 0, 0
    while position < end and j < later.size:
        if i < arrival.size and arrival[i] <= position:
            flags.append(np.ones(1, dtype=bool))
            parts.append(first[i : i + 1])
            position += int(first[i])
            i += 1
            continue
        # The later sessions that start before the next arrival (or the end).
        stop = min(int(arrival[i]) if i < arrival.size else end, end)
        until = max(int(np.searchsorted(bounds, stop - position + bounds[j], side="left")), j + 1)
        until = min(until, later.size)
        flags.append(np.zeros(until - j, dtype=bool))
        parts.append(later[j:until])
        position += int(bounds[until] - bounds[j])
        j = until
    while position < end and i < arrival.size and arrival[i] <= position:  # later ran out: arrivals only
        flags.append(np.ones(1, dtype=bool))
        parts.append(first[i : i + 1])
        position += int(first[i])
        i += 1
    return np.concatenate(flags), np.concatenate(parts)


def _focal_genres(rng: np.random.Generator, users: np.ndarray, settings: dict[str, Any], population: dict[str, Any]) -> np.ndarray:
    """A focal genre per user draw (-1 without preference-driven choice): genre g with probability
    proportional to its popularity mass times exp(focus_strength * the user's preference for g),
    sampled as the argmax of the logits plus Gumbel noise."""
    if float(settings["genre_focus"]) == 0.0:
        return np.full(users.size, -1, dtype=np.int64)
    logits = population["genre_log_mass"] + float(settings["focus_strength"]) * population["preferences"][users]
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _draw_movies(
    rng: np.random.Generator,
    index: np.ndarray,
    focus: np.ndarray,
    n_ratings: int,
    initial: int,
    population: dict[str, Any],
    genre_focus: float,
) -> np.ndarray:
    """0-based movies for stream positions `index`: by popularity among the movies arrived, and for
    a `genre_focus` share of the rows with a focal genre, among that genre's arrived movies."""
    cumulative_weight = population["movie_cumulative_weight"]
    arrived = _arrived(index, n_ratings, initial, cumulative_weight.size)
    movies = _draw_prefix(rng, arrived, cumulative_weight)
    if genre_focus == 0.0:
        return movies
    focused = (focus >= 0) & (rng.random(index.size) < genre_focus)
    for genre, (ids, genre_weight) in enumerate(population["genre_pools"]):
        rows = np.flatnonzero(focused & (focus == genre))
        present = np.searchsorted(ids, arrived[rows])  # the genre's movies with an id below `arrived`
        rows, present = rows[present > 0], present[present > 0]
        if rows.size:
            movies[rows] = ids[_draw_prefix(rng, present, genre_weight)]
    return movies


def _redraw_repeated_pairs(
    rng: np.random.Generator,
    users: np.ndarray,
    movies: np.ndarray,
    written_pairs: np.ndarray,
    n_ratings: int,
    draw_users: Any,
    draw_movies: Any,
    n_users: int,
    n_movies: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Redraw every draw whose (user, movie) pair was already used; return the chunk's sorted keys.

    Earlier positions keep their pair; later repeats are redrawn in vectorised rounds over just
    the repeated positions until none is left (`draw_movies(positions, focused)`, and after
    _MOVIE_REDRAWS rounds `draw_users(positions)` too, draw as the first draw did; from round
    _FOCUSED_REDRAWS on, movies without the focal genre). `n_movies` counts every movie id
    that may occur, so a pair's key is unique.
    """
    users, movies = users.copy(), movies.copy()
    keys = users * n_movies + movies
    # In sorted order a repeat within the chunk sits right after its first (stable) occurrence.
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated_sorted = _contains(written_pairs, sorted_keys)
    repeated_sorted[1:] |= sorted_keys[1:] == sorted_keys[:-1]  # stable: the earliest is kept
    accepted = sorted_keys[~repeated_sorted]
    repeated = np.empty(keys.size, dtype=bool)
    repeated[order] = repeated_sorted
    for round_number in range(_MAX_REDRAW_ROUNDS):
        positions = np.flatnonzero(repeated)
        if positions.size == 0:
            return users, movies, accepted
        if round_number >= _MOVIE_REDRAWS:
            users[positions] = draw_users(positions)
        movies[positions] = draw_movies(positions, round_number < _FOCUSED_REDRAWS)
        candidate = users[positions] * n_movies + movies[positions]
        fresh = (
            _first_occurrence(candidate)
            & ~_contains(written_pairs, candidate)
            & ~_contains(accepted, candidate)
        )
        accepted = _merge_sorted(accepted, np.sort(candidate[fresh]))
        repeated[positions[fresh]] = False
    raise RecsysError(
        f"could not draw {n_ratings} distinct (user, movie) pairs from {n_users} users and {n_movies} movies "
        "as they arrive; ask for fewer ratings or a larger population."
    )


def _first_occurrence(keys: np.ndarray) -> np.ndarray:
    """True at the first position of each distinct key."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first_sorted = np.ones(keys.size, dtype=bool)
    first_sorted[1:] = sorted_keys[1:] != sorted_keys[:-1]
    first = np.empty(keys.size, dtype=bool)
    first[order] = first_sorted
    return first


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of `keys` is in `sorted_keys`."""
    if sorted_keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    where = np.minimum(_searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[where] == keys


def _searchsorted(haystack: np.ndarray, needles: np.ndarray, side: str = "left") -> np.ndarray:
    """np.searchsorted, with the needles sorted first.

    numpy's binary search reuses its last bound when the needles are sorted, which saves most of
    the cache misses in a large haystack (every pair written so far, or 200k cumulative weights):
    sorting first is several times faster for the pair set and ~1.5x for the weights.
    """
    order = np.argsort(needles)
    where = np.empty(needles.size, dtype=np.int64)
    where[order] = np.searchsorted(haystack, needles[order], side=side)
    return where


def _merge_sorted(sorted_keys: np.ndarray, new_sorted_keys: np.ndarray) -> np.ndarray:
    """Merge two sorted arrays in linear time (np.insert at the searchsorted positions)."""
    return np.insert(sorted_keys, np.searchsorted(sorted_keys, new_sorted_keys), new_sorted_keys)


def _newcomers(rng: np.random.Generator, index: np.ndarray, ids: np.ndarray, arrivals: list[dict[str, Any]]) -> None:
    """From each new_population (users) or catalog_growth (movies) scenario's row on, give its
    `share` of the draws at stream positions `index` to its newcomers (by their activity or
    popularity weight), in place in `ids`."""
    for arrival in arrivals:
        pick = np.flatnonzero((index >= arrival["from_row"]) & (rng.random(index.size) < arrival["share"]))
        weights = arrival["cumulative_weight"]
        ids[pick] = arrival["first_id"] + np.minimum(_searchsorted(weights, rng.random(pick.size) * weights[-1], side="right"), weights.size - 1)


def _drift_term(index: np.ndarray, movies: np.ndarray, drifts: list[dict[str, Any]], population: dict[str, Any]) -> np.ndarray:
    """The shifts of the drift scenarios in force at each rating (see DEFAULT_PARAMS["drift"])."""
    term = np.zeros(index.size)
    for drift in drifts:
        if drift["kind"] != "genre_appeal":
            continue
        genre = GENRES.index(drift["genre"])
        has_genre = (population["movie_genres"][movies] == genre).any(axis=1)
        term += np.where((index >= drift["from_row"]) & has_genre, float(drift["shift"]), 0.0)
    return term


def _genre_term(users: np.ndarray, movies: np.ndarray, population: dict[str, Any]) -> np.ndarray:
    """Mean of the user's preferences over the movie's genres (0 for movies without genres)."""
    genres = population["movie_genres"][movies]  # (n, 3), -1 where the slot is empty
    preferences = population["preferences"]
    total = np.zeros(users.size)
    for slot in range(3):  # three slots, not a loop over rows
        present = genres[:, slot] >= 0
        total += np.where(present, preferences[users, np.maximum(genres[:, slot], 0)], 0.0)
    count = population["genre_count"][movies]
    return np.divide(total, count, out=np.zeros(users.size), where=count > 0)


_MOMENT_TABLES: dict[float, tuple[float, float, np.ndarray, np.ndarray]] = {}
