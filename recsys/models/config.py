"""The genre-preference two-tower model's settings, and the names of its inputs and layers.

Why two towers: a user is described by what they rated so far (per-genre means and counts), a
movie by what it is (genres, year) and how it was rated so far; each tower maps its side to a
vector, and the predicted rating is the global mean plus the two vectors' dot product. The towers
thus learn deviations from the mean, and each tower alone gives embeddings (`network.towers`).

The modules beside this one: `inputs` (feature frames to input matrices), `network` (the Keras
model and its towers), `training` (the training loop, prediction, metrics) and `artifacts`
(.keras files with a checksum).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from recsys.errors import RecsysError
from recsys.features.point_in_time import GENRE_FLAGS
from recsys.genres import GENRE_SLUGS
from recsys.models.factors import FactorSettings

# The size of every user and movie vector: the embedding tables in sql/embeddings.*.sql are
# created with it, and serving refuses vectors of another size.
EMBEDDING_DIM = 32

# Names of the model's inputs and of the layers later code looks up.
USER_INPUT = "user_features"
MOVIE_INPUT = "movie_features"
USER_ID_INPUT = "user_id"
MOVIE_ID_INPUT = "movie_id"
USER_FACTORS_INPUT = "user_factors"
MOVIE_FACTORS_INPUT = "movie_factors"
GLOBAL_MEAN_INPUT = "global_mean"
USER_TOWER = "user_tower"
MOVIE_TOWER = "movie_tower"
OUTPUT = "rating"

# Column order of the tower inputs, for anyone who needs to explain or rebuild them.
USER_INPUT_COLUMNS = [
    "user_mean_rel",
    "user_log_count",
    *[f"user_genre_mean_rel_{s}" for s in GENRE_SLUGS],
    *[f"user_genre_log_count_{s}" for s in GENRE_SLUGS],
]
MOVIE_INPUT_COLUMNS = [*GENRE_FLAGS, "m_no_genre", "m_year_z", "m_year_known", "movie_mean_rel", "movie_log_count"]

# log1p counts reach ~9 at 10k ratings; scaled to about 0..2, the range of the relative means.
LOG_COUNT_SCALE = 0.2
# The towers' output layers start 10x smaller than Glorot: a fresh model then predicts about the
# global mean (first-batch MSE ~0.9 instead of ~15), and training converges in a few epochs.
OUTPUT_INIT_SCALE = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and training settings; `to_dict()` is what a run records with its model.

    Defaults were tuned on synthetic data (300k-400k ratings): batch 4096 and 8 epochs at 3e-3
    close ~60% of the gap between the bias baseline and the noise floor; bigger towers or more
    epochs gained under 0.005 MSE.
    """

    user_hidden: tuple[int, ...] = (64,)
    movie_hidden: tuple[int, ...] = (64,)
    embedding_dim: int = EMBEDDING_DIM
    learning_rate: float = 3e-3  # full training from fresh weights
    warm_learning_rate: float = 3e-4  # daily warm starts: small steps keep what the parent learned
    batch_size: int = 4096
    epochs: int = 8  # full training
    # A full training's epochs shrink to see at most this many examples: at MovieLens-32M's 30M
    # examples 8 epochs would take about 15 minutes a weekly retrain, where one pass takes two.
    max_examples_seen: int = 40_000_000
    warm_epochs: int = 2  # a warm start's passes over one day's examples
    shrinkage: float = 2.0  # k: how many ratings' worth of weight the prior of a mean gets
    # Hashed ID embeddings beside the features (0: genre features only). Rows start at zero, so an
    # id never trained on (a new user) adds nothing and the tower falls back on the features.
    # Off by default: on MovieLens 100K, 8 dimensions raised the champion's RMSE (see README).
    id_dim: int = 0
    id_buckets: int = 1 << 16
    # Latent movie factors with each user's folded in at event time (`recsys.models.factors`):
    # the towers' vectors end with them, so the model adds the factor model's prediction to what
    # the towers learn. 0: genre towers only (the model before them, kept as an ablation).
    factors: int = 5
    factor_reg: float = 8.0
    factor_user_bias_reg: float = 5.0
    factor_movie_bias_reg: float = 3.0
    factor_iterations: int = 15  # alternating passes of a full training's fit from random factors
    # A full training after an earlier one with these settings continues it (`versions.previous_full`):
    # the factor fit for this many passes (3 did as well as 15 from random factors, at 1/6 of the
    # time), the towers for `retrain_epochs` at `warm_learning_rate` ...
    factor_retrain_iterations: int = 3
    retrain_epochs: int = 1
    # ... over at most the latest this many examples (the factors still fit every rating). The
    # model it continues has learned the older ones, so the weekly retrain's towers cost the same
    # at any archive size, and recent examples teach it more: at MovieLens-32M's shape, continuing
    # the week-2 full model through day 16 and judged on days 17 to 20 (200k examples), every
    # example (5.85M) gave a holdout MSE of 0.4156 in 51 s, the latest 2M 0.4120 in 22 s, the
    # latest 1M 0.4120 (by hand, issue 14's note).
    max_examples_continued: int = 2_000_000
    # A warm start carries its parent's fit forward from the users who rated since
    # (`factors.update_movie_factors`); a parent saved without the fit's state gets this many
    # passes over every rating instead (on MovieLens 100K's replay 1 did as well as 2 or 3: RMSE
    # 0.955; factors refitted only weekly, 0.965).
    factor_warm_iterations: int = 1
    fold_in_reg: float = 5.0
    fold_in_bias_reg: float = 12.0
    seed: int = 0

    def __post_init__(self) -> None:
        # k = 0 would divide 0 by 0 for users without history, the most common case on a new day.
        if self.shrinkage <= 0:
            raise RecsysError(f"The model's shrinkage must be positive, got {self.shrinkage}.")
        if self.id_dim < 0:
            raise RecsysError(f"The model's id_dim must be 0 or more, got {self.id_dim}.")
        if self.factors < 0 or (self.factors and self.factor_settings().width >= self.embedding_dim):
            raise RecsysError(
                f"The model's factors must be 0 or more and leave room in its {self.embedding_dim}-dimensional vectors, got {self.factors}."
            )
        for name in ("embedding_dim", "batch_size", "epochs", "max_examples_seen", "warm_epochs", "id_buckets", "factor_retrain_iterations", "retrain_epochs", "max_examples_continued"):
            if getattr(self, name) < 1:
                raise RecsysError(f"The model's {name} must be at least 1, got {getattr(self, name)}.")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def factor_settings(self) -> FactorSettings:
        return FactorSettings(
            factors=self.factors, factor_reg=self.factor_reg, user_bias_reg=self.factor_user_bias_reg,
            movie_bias_reg=self.factor_movie_bias_reg, iterations=self.factor_iterations,
            fold_in_reg=self.fold_in_reg, fold_in_bias_reg=self.fold_in_bias_reg, seed=self.seed,
        )  # fmt: skip

    @property
    def learned_dim(self) -> int:
        """The size of what each tower learns: the vector less the factor model's slots."""
        return self.embedding_dim - (self.factor_settings().width if self.factors else 0)

    def full_epochs(self, examples: int) -> int:
        """Epochs of a full training on `examples` examples: `epochs`, fewer when that would see
        more than `max_examples_seen`, and always at least one."""
        return max(1, min(self.epochs, self.max_examples_seen // max(examples, 1)))

