"""A deterministic MovieLens-format data set whose true rating model is known.

Why: a recommender platform needs data that behaves like MovieLens (long tails, a population that
grows over time, half-star ratings) but whose ground truth is known, so tests and benchmarks can
say how close a trained model gets to the best possible error instead of only "lower is better".

Generative model (also written to truth.json):

* 19 MovieLens genres with unequal frequencies (Drama and Comedy common, IMAX and Film-Noir rare).
  Each movie has 1-3 distinct genres (a small fraction has "(no genres listed)"), a release year,
  an item bias b_i ~ N(0, sigma_item) and a popularity weight (rank + offset) ** -alpha over a
  random ranking of the movies (Zipf-Mandelbrot: a heavy head, a long tail).
* Each user u has a bias b_u ~ N(0, sigma_user), a genre-preference vector p_u ~ N(0, sigma_pref)
  (one value per genre) and an activity weight ~ lognormal(0, activity_sigma).
* Latent mean m_ui = mu + b_u + b_i + mean of p_ug over the movie's genres (0 without genres).
  Observed rating r = clip(round_to_half(m_ui + eps), 0.5, 5.0) with eps ~ N(0, sigma_noise).
* Drift (optional, `drift`): from a given rating of the stream on, a genre's appeal shifts: every
  movie of the genre gets `shift` added to its latent mean (truth.json says what changed when).
* Time: ratings are written in time order starting at `start_timestamp`, with Poisson gaps of
  `mean_gap_seconds`. Users and movies arrive in id order: a share is present from the start and the
  rest arrive at an even pace over the stream; movies are drawn only among those that have arrived.
* Sessions (`sessions`, the default): MovieLens users rate in sessions, dozens of movies within
  minutes, and a new user's first ratings cluster on their first day. The stream is a run of
  sessions, each one user's consecutive ratings: an arriving user starts with a first session
  (first_session_min + a geometric number of ratings, mean first_session_mean), and between
  arrivals come sessions of the users present, drawn by activity weight (geometric lengths, mean
  session_mean). Without sessions every rating draws its user anew by activity weight.
* Choice (`genre_focus`): which movies a user rates depends on their preferences as well as on
  popularity. Each session (or rating, without sessions) has a focal genre, drawn with probability
  proportional to the genre's popularity mass times exp(focus_strength * p_ug); a genre_focus share
  of the ratings picks among the focal genre's arrived movies by popularity, the rest among all
  arrived movies. Users thus rate more of the genres they like, as real ones do, and a ranking
  that knows their taste can beat popularity. `INDEPENDENT_PARAMS` (`recsys generate
  --independent`) is the generator before sessions and choice: every draw independent, movies by
  popularity alone.
* A user rates a movie at most once: a repeated (user, movie) draw is redrawn (the movie, and after
  a few tries the user too), which is weighted sampling without replacement per user; heavy users
  thus reach deep into the tail, as real ones do. (unique_pairs=False skips this and lets pairs
  repeat.)

Truth: `noise_floor_mse` is the mean over the generated ratings of Var(r | m_ui), the error of the
Bayes-optimal predictor E[r | m_ui]; `oracle_bias_mse` is the mean of E[(r - pred)^2 | m_ui] for the
best user+item-bias predictor pred = mu + b_u + b_i + c_u, where c_u is the user's mean offset
over their own ratings (what a fitted user bias absorbs of the genre term); `oracle_bias_prior_mse`
is the same with c_u = 0 (the genre term replaced by its prior mean). Both use the exact
distribution of the discretised, clipped normal (to ~1e-13), see `rating_moments`.

Output is generated in chunks, each from its own numpy Generator seeded by
SeedSequence(seed, spawn_key=(1, chunk)), and appended to ratings.csv, so the same arguments give
the same bytes and the ratings are never all in memory: memory is the population, one chunk, and
(for unique pairs) a sorted int64 key per rating written so far, 8 bytes a rating (256 MB at 32M;
the whole run peaks near 1 GB there, 0.5 GB at 5M).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys.errors import RecsysError
from recsys.genres import GENRES
from recsys.sources.synthetic.moments import rating_moments
from recsys.sources.synthetic.population import (
    DEFAULT_PARAMS,
    GENRE_WEIGHTS,
    INDEPENDENT_PARAMS,
    make_population,
    population_size,
    settings_for,
)
from recsys.sources.synthetic.stream import write_ratings

__all__ = ["DEFAULT_PARAMS", "GENRES", "INDEPENDENT_PARAMS", "generate", "population_size", "rating_moments"]


def generate(out: Path, n_ratings: int, seed: int = 0, **params: Any) -> dict[str, Any]:
    """Write ratings.csv, movies.csv, truth.json, truth_users.parquet, truth_movies.parquet to `out`.

    Returns the truth dict also written to truth.json. `params` override `DEFAULT_PARAMS`.
    """
    settings = settings_for(n_ratings, params)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RecsysError(f"{out} cannot be created: {error.strerror or error}.") from error

    population = make_population(n_ratings, seed, settings)
    population["movies"].write_csv(out / "movies.csv")
    population["truth_movies"].write_parquet(out / "truth_movies.parquet")
    population["truth_users"].write_parquet(out / "truth_users.parquet")

    stats = write_ratings(out / "ratings.csv", n_ratings, seed, settings, population)

    truth = {
        "model": (
            "m_ui = mu + b_u + b_i + mean_{g in genres(i)} p_ug (0 without genres); "
            "r = clip(round_to_half(m_ui + eps), 0.5, 5.0), eps ~ N(0, sigma_noise); "
            "b_u ~ N(0, sigma_user), b_i ~ N(0, sigma_item), p_ug ~ N(0, sigma_pref); "
            "movie popularity (rank + popularity_offset)^-popularity_alpha over a random ranking, "
            "user activity lognormal(0, activity_sigma); users and movies arrive in id order and "
            "are drawn only after arrival; with sessions the stream is a run of sessions (a user's "
            "consecutive ratings): an arriving user's first session has first_session_min + "
            "Geometric ratings (mean first_session_mean), the sessions between are present users' "
            "by activity (Geometric, mean session_mean); each session (or rating) has a focal genre "
            "with P(g) proportional to genre popularity mass * exp(focus_strength * p_ug), and a "
            "genre_focus share of its movies is drawn among that genre's movies by popularity, the "
            "rest among all; with unique_pairs a repeated (user, movie) draw is redrawn "
            "(per-user sampling without replacement); ratings in time order with "
            "Poisson(mean_gap_seconds) gaps. "
            "noise_floor_mse = mean Var(r | m_ui); "
            "oracle_bias_mse = mean E[(r - mu - b_u - b_i - c_u)^2 | m_ui] "
            "with c_u the user's mean of E[r|m_ui] - mu - b_u - b_i over their ratings; "
            "oracle_bias_prior_mse uses c_u = 0."
        ),
        "seed": seed,
        "n_ratings": n_ratings,
        "n_users": settings["n_users"],
        "n_movies": settings["n_movies"],
        "genres": list(GENRES),
        "genre_weights": [GENRE_WEIGHTS[genre] for genre in GENRES],
        "params": {key: settings[key] for key in DEFAULT_PARAMS},
        # What changed when: each drift scenario, from which rating of the stream on.
        "drift": settings["drift"],
        **stats,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
