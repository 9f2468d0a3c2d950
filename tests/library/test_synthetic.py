"""The synthetic generator is deterministic, MovieLens-shaped, and its recorded truth is right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.sources.synthetic import (
    DEFAULT_PARAMS,
    GENRES,
    INDEPENDENT_PARAMS,
    generate,
    population_size,
    rating_moments,
)

N_RATINGS = 200_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic")
    # Small chunks so the test crosses many chunk boundaries.
    truth = generate(out, N_RATINGS, seed=7, chunk_size=30_000)
    return out, truth


@pytest.fixture(scope="module")
def ratings(generated: tuple[Path, dict]) -> pl.DataFrame:
    return pl.read_csv(generated[0] / "ratings.csv")


def latent_means(out: Path, ratings: pl.DataFrame, truth: dict) -> np.ndarray:
    """m_ui rebuilt from the truth files alone, per rating, in file order."""
    users = pl.read_parquet(out / "truth_users.parquet")
    movies = pl.read_parquet(out / "truth_movies.parquet")
    preferences = users.unpivot(
        index="userId", on=[f"pref_{genre}" for genre in GENRES], variable_name="genre", value_name="pref"
    ).with_columns(pl.col("genre").str.strip_prefix("pref_"))
    numbered = ratings.with_row_index("row")
    genre_term = (
        numbered.join(movies.select("movieId", "genres"), on="movieId")
        .with_columns(pl.col("genres").str.split("|").alias("genre"))
        .explode("genre")
        .join(preferences, on=["userId", "genre"], how="left")  # "(no genres listed)" finds none
        .group_by("row")
        .agg(pl.col("pref").mean().fill_null(0.0).alias("genre_term"))
    )
    frame = (
        numbered.join(users.select("userId", pl.col("bias").alias("user_bias")), on="userId")
        .join(movies.select("movieId", pl.col("bias").alias("item_bias")), on="movieId")
        .join(genre_term, on="row")
        .sort("row")
    )
    mu = truth["params"]["mu"]
    return (mu + frame["user_bias"] + frame["item_bias"] + frame["genre_term"]).to_numpy()


def test_files_and_truth(generated: tuple[Path, dict]) -> None:
    out, truth = generated
    assert sorted(path.name for path in out.iterdir()) == [
        "movies.csv",
        "ratings.csv",
        "truth.json",
        "truth_movies.parquet",
        "truth_users.parquet",
    ]
    assert json.loads((out / "truth.json").read_text()) == truth
    assert truth["n_ratings"] == N_RATINGS
    assert (truth["n_users"], truth["n_movies"]) == population_size(N_RATINGS)
    assert truth["genres"] == list(GENRES) and len(GENRES) == 19
    assert set(DEFAULT_PARAMS) <= set(truth["params"])
    assert truth["seed"] == 7 and "model" in truth
    users = pl.read_parquet(out / "truth_users.parquet")
    assert users.columns == ["userId", "bias", *[f"pref_{genre}" for genre in GENRES]]
    assert users.height == truth["n_users"]
    assert pl.read_parquet(out / "truth_movies.parquet").columns == ["movieId", "bias", "genres"]


def test_ratings_format(generated: tuple[Path, dict], ratings: pl.DataFrame) -> None:
    out, truth = generated
    lines = (out / "ratings.csv").read_text().splitlines()
    assert lines[0] == "userId,movieId,rating,timestamp"
    assert len(lines) == N_RATINGS + 1
    assert all(line.count(",") == 3 for line in lines[1:1000])
    assert {line.split(",")[2] for line in lines[1:]} <= {f"{value / 2:.1f}" for value in range(1, 11)}
    assert ratings.schema == pl.Schema(
        {"userId": pl.Int64, "movieId": pl.Int64, "rating": pl.Float64, "timestamp": pl.Int64}
    )
    assert ratings.height == N_RATINGS
    assert ratings["rating"].min() >= 0.5 and ratings["rating"].max() <= 5.0
    assert ((ratings["rating"] * 2) % 1 == 0).all()
    assert ratings["timestamp"].diff().drop_nulls().min() >= 0
    assert ratings["timestamp"][0] == truth["first_timestamp"] == DEFAULT_PARAMS["start_timestamp"]
    assert ratings["timestamp"][-1] == truth["last_timestamp"]
    # Every user rates a movie at most once, as in MovieLens.
    assert ratings.select(pl.struct("userId", "movieId").n_unique()).item() == N_RATINGS


def test_movies(generated: tuple[Path, dict], ratings: pl.DataFrame) -> None:
    out, truth = generated
    movies = pl.read_csv(out / "movies.csv")
    assert movies.columns == ["movieId", "title", "genres"]
    assert movies.height == truth["n_movies"]
    assert movies["movieId"].to_list() == list(range(1, truth["n_movies"] + 1))
    assert ratings["movieId"].is_in(movies["movieId"].implode()).all()
    assert ratings["userId"].min() >= 1 and ratings["userId"].max() <= truth["n_users"]
    assert movies["title"].str.contains(r"^Synthetic Movie \d+.* \(\d{4}\)$").all()
    assert movies.filter(pl.col("title").str.contains(",")).height > 0
    assert '"' in (out / "movies.csv").read_text()  # those titles are quoted in the file
    genre_lists = movies["genres"].str.split("|")
    no_genres = movies["genres"] == "(no genres listed)"
    assert 0 < no_genres.sum() < 0.05 * movies.height
    counts = genre_lists.filter(~no_genres).list.len()
    assert counts.min() == 1 and counts.max() == 3
    used = genre_lists.filter(~no_genres).explode().value_counts()
    assert set(used["genres"]) <= set(GENRES)
    frequency = dict(zip(used["genres"], used["count"]))
    assert frequency["Drama"] > 10 * frequency.get("IMAX", 0)  # unequal genre frequencies


def test_long_tails(ratings: pl.DataFrame, generated: tuple[Path, dict]) -> None:
    truth = generated[1]
    per_movie = ratings.group_by("movieId").len().sort("len", descending=True)["len"]
    assert per_movie.head(truth["n_movies"] // 100).sum() > 4 * 0.01 * N_RATINGS  # top 1%: > 4%
    assert per_movie.head(truth["n_movies"] // 10).sum() > 0.25 * N_RATINGS  # top 10%: > 25%
    assert (per_movie < per_movie.mean()).mean() > 0.6  # most movies have few ratings
    per_user = ratings.group_by("userId").len().sort("len", descending=True)["len"]
    assert per_user.head(truth["n_users"] // 100).sum() > 5 * 0.01 * N_RATINGS
    assert per_user.max() > 10 * per_user.median()
    assert (per_user < per_user.mean()).mean() > 0.6


def test_population_grows_over_time(ratings: pl.DataFrame, generated: tuple[Path, dict]) -> None:
    truth = generated[1]
    first_tenth = ratings.head(N_RATINGS // 10)
    assert first_tenth["userId"].n_unique() < 0.4 * ratings["userId"].n_unique()
    assert first_tenth["movieId"].max() < 0.5 * truth["n_movies"]
    # Ids arrive in order: a user's first rating comes later the larger the id.
    first_seen = ratings.group_by("userId").agg(pl.col("timestamp").min())
    assert first_seen.select(pl.corr("userId", "timestamp", method="spearman")).item() > 0.9


def test_noise_floor_matches_monte_carlo(generated: tuple[Path, dict], ratings: pl.DataFrame) -> None:
    out, truth = generated
    params = truth["params"]
    latent = latent_means(out, ratings, truth)
    rng = np.random.default_rng(123)
    draws = 40
    noisy = latent[:, None] + rng.normal(0.0, params["sigma_noise"], (latent.size, draws))
    simulated = np.clip(np.round(noisy * 2) / 2, 0.5, 5.0)
    monte_carlo_floor = simulated.var(axis=1, ddof=1).mean()
    assert truth["noise_floor_mse"] == pytest.approx(monte_carlo_floor, abs=0.003)
    # The written ratings follow the model: their error around E[r|m] is the floor too.
    mean, _ = rating_moments(latent, params["sigma_noise"])
    observed = float(((ratings["rating"].to_numpy() - mean) ** 2).mean())
    assert observed == pytest.approx(truth["noise_floor_mse"], abs=0.005)
    # The prior bias oracle (genre term replaced by 0) as an empirical check of that figure.
    users = pl.read_parquet(out / "truth_users.parquet").select("userId", pl.col("bias").alias("b_u"))
    movies = pl.read_parquet(out / "truth_movies.parquet").select("movieId", pl.col("bias").alias("b_i"))
    biased = ratings.join(users, on="userId", maintain_order="left").join(
        movies, on="movieId", maintain_order="left"
    )
    prediction = params["mu"] + biased["b_u"].to_numpy() + biased["b_i"].to_numpy()
    prior_mse = float(((biased["rating"].to_numpy() - prediction) ** 2).mean())
    assert prior_mse == pytest.approx(truth["oracle_bias_prior_mse"], abs=0.01)


def test_genre_preference_matters(generated: tuple[Path, dict]) -> None:
    truth = generated[1]
    floor, bias_only = truth["noise_floor_mse"], truth["oracle_bias_mse"]
    assert 0.2 < floor < 0.3
    assert bias_only > 1.8 * floor
    assert truth["oracle_bias_prior_mse"] >= bias_only


def _runs(ratings: pl.DataFrame) -> pl.DataFrame:
    """Runs of consecutive rows by one user: their user, first row and length."""
    return (
        ratings.with_row_index("row")
        .with_columns(run=(pl.col("userId") != pl.col("userId").shift(1)).fill_null(True).cum_sum())
        .group_by("run", maintain_order=True)
        .agg(pl.col("userId").first(), pl.col("row").first(), pl.len().alias("length"))
    )


def test_users_rate_in_sessions(ratings: pl.DataFrame, generated: tuple[Path, dict], tmp_path: Path) -> None:
    """A user's ratings come in runs (sessions); an arriving user starts with a long first session,
    so most of a new user's early history is their first day; the sessions go on across chunks."""
    out, truth = generated
    params = truth["params"]
    runs = _runs(ratings)
    # Runs are sessions; a few are split where a user who had rated nearly every movie present
    # was replaced at one rating (the unique-pairs redraw), and two adjacent sessions of one user merge.
    assert truth["n_sessions"] <= runs.height <= 1.25 * truth["n_sessions"]
    assert truth["n_sessions"] < N_RATINGS / 5
    # Every user who arrived during the stream (not present from the start) begins with a first session.
    initial = math.ceil(truth["n_users"] * params["initial_user_fraction"])
    first_runs = runs.group_by("userId", maintain_order=True).first().filter(pl.col("userId") > initial)
    complete = first_runs.filter(pl.col("row") + params["first_session_min"] <= N_RATINGS)
    assert complete.height > 0.9 * (truth["n_users"] - initial)
    assert (complete["length"] >= params["first_session_min"]).mean() > 0.95
    # A session open at a chunk's end (30,000 rows) goes on in the next chunk.
    boundaries = [boundary for boundary in range(30_000, N_RATINGS, 30_000)]
    crossing = ratings.with_row_index("row").filter(pl.col("row").is_in([b - 1 for b in boundaries] + boundaries))
    pairs = crossing["userId"].to_list()
    assert sum(pairs[2 * k] == pairs[2 * k + 1] for k in range(len(boundaries))) >= len(boundaries) // 2
    # A day of 5,000 rows has far fewer distinct users than without sessions.
    independent_out = tmp_path / "independent"
    generate(independent_out, N_RATINGS, seed=7, chunk_size=30_000, **INDEPENDENT_PARAMS)
    independent = pl.read_csv(independent_out / "ratings.csv")
    assert _runs(independent)["length"].mean() < 1.2

    def users_per_day(frame: pl.DataFrame) -> float:
        days = frame.with_row_index("row").with_columns(day=pl.col("row") // 5_000)
        return days.group_by("day").agg(pl.col("userId").n_unique())["userId"].mean()

    assert users_per_day(ratings) < 0.5 * users_per_day(independent)


def _genre_affinity(out: Path, ratings: pl.DataFrame) -> float:
    """The correlation, over (user, genre), between the user's preference for the genre and how much
    more of their ratings fall in it than the genre's share of all ratings."""
    users = pl.read_parquet(out / "truth_users.parquet")
    movies = pl.read_csv(out / "movies.csv").select("movieId", pl.col("genres").str.split("|").alias("genre"))
    by_genre = ratings.join(movies, on="movieId").explode("genre").filter(pl.col("genre").is_in(GENRES))
    share = by_genre.group_by("genre").len().with_columns(overall=pl.col("len") / pl.col("len").sum()).drop("len")
    per_user = (
        by_genre.group_by("userId", "genre").len()
        .with_columns(user_share=pl.col("len") / pl.col("len").sum().over("userId"), total=pl.col("len").sum().over("userId"))
        .filter(pl.col("total") >= 50)
        .join(share, on="genre")
    )  # fmt: skip
    preferences = users.unpivot(
        index="userId", on=[f"pref_{genre}" for genre in GENRES], variable_name="genre", value_name="pref"
    ).with_columns(pl.col("genre").str.strip_prefix("pref_"))
    joined = per_user.join(preferences, on=["userId", "genre"])
    return joined.select(pl.corr("pref", (pl.col("user_share") / pl.col("overall")).log())).item()


def test_choice_follows_preferences(ratings: pl.DataFrame, generated: tuple[Path, dict], tmp_path: Path) -> None:
    """Users rate more of the genres they prefer; with choice by popularity alone they do not."""
    assert _genre_affinity(generated[0], ratings) > 0.2
    out = tmp_path / "popularity_only"
    generate(out, N_RATINGS, seed=7, chunk_size=30_000, genre_focus=0.0)
    assert abs(_genre_affinity(out, pl.read_csv(out / "ratings.csv"))) < 0.05


def test_rating_moments_exact() -> None:
    sigma = 0.5
    m = np.array([-3.0, 0.1, 0.74, 1.0, 2.2501, 3.5, 4.7499, 5.3, 9.0])
    mean, second = rating_moments(m, sigma)
    values = np.arange(1, 11) / 2

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))

    for index, center in enumerate(m):
        edges = [-math.inf, *(values[:-1] + 0.25), math.inf]
        probabilities = np.array([cdf(edges[k + 1] - center) - cdf(edges[k] - center) for k in range(10)])
        assert mean[index] == pytest.approx(probabilities @ values, abs=1e-10)
        assert second[index] == pytest.approx(probabilities @ values**2, abs=1e-10)


def test_deterministic(tmp_path: Path) -> None:
    names = ["ratings.csv", "movies.csv", "truth.json"]
    generate(tmp_path / "a", 30_000, seed=1, chunk_size=7_000)
    generate(tmp_path / "b", 30_000, seed=1, chunk_size=7_000)
    generate(tmp_path / "c", 30_000, seed=2, chunk_size=7_000)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in ["truth_users.parquet", "truth_movies.parquet"]:
        assert pl.read_parquet(tmp_path / "a" / name).equals(pl.read_parquet(tmp_path / "b" / name))
    assert (tmp_path / "a" / "ratings.csv").read_bytes() != (tmp_path / "c" / "ratings.csv").read_bytes()
    assert (tmp_path / "a" / "movies.csv").read_bytes() != (tmp_path / "c" / "movies.csv").read_bytes()


def test_tiny_and_repeating_pairs(tmp_path: Path) -> None:
    truth = generate(tmp_path / "tiny", 10, seed=0)
    assert truth["n_users"] >= 20 and truth["n_movies"] >= 50
    assert pl.read_csv(tmp_path / "tiny" / "ratings.csv").height == 10
    truth = generate(tmp_path / "repeats", 5_000, seed=0, unique_pairs=False, n_users=20, n_movies=50)
    ratings = pl.read_csv(tmp_path / "repeats" / "ratings.csv")
    assert ratings.height == 5_000
    assert ratings.select(pl.struct("userId", "movieId").n_unique()).item() < 1_000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n_ratings": 0}, "n_ratings must be a positive"),
        ({"n_ratings": 10, "sigma_nois": 0.5}, "unknown synthetic data parameter"),
        ({"n_ratings": 10, "sigma_noise": 0.0}, "sigma_noise must be positive"),
        ({"n_ratings": 10, "genre_focus": 1.5}, "genre_focus must be a share"),
        ({"n_ratings": 10, "first_session_min": 50}, "Sessions need"),
        (
            {"n_ratings": 2_000, "n_users": 20, "n_movies": 50},
            "could not draw 2000 distinct .* from 20 users and 50 movies",
        ),
    ],
)
def test_bad_arguments(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(RecsysError, match=message):
        generate(tmp_path / "out", **arguments)
