"""The retrieval stage: a two-tower model of which movies a user chooses to rate.

Why a second model: the rating model predicts how much a user will like a movie they rate, not
which movies they will pick; ranking the catalog by predicted rating fills a top 10 with
obscure movies that score high and that nobody watches (on real MovieLens 100K it reached half
of plain most-popular's NDCG@10). This model learns the choice itself from implicit feedback:
every rating is a positive (user, movie) pair, and the other movies of the same training batch
are the negatives (in-batch softmax, as in Yi et al., "Sampling-bias-corrected neural modeling
for large corpus item recommendations", RecSys 2019). Popular movies turn up as negatives more
often than their share of the catalog, so each logit is corrected by the log of the movie's
frequency among the training pairs (logQ correction); the model then estimates the full
softmax, popularity included.

The towers are hashed ID embeddings (user and movie ids through Keras' Hashing layer into
`id_buckets` rows): new ids need no vocabulary change and a warm start keeps every learned row.
In an offline run of MovieLens 100K's replay, adding the genre-preference features to these
towers lowered returning users' NDCG@10 (figures in issue 11's note; no benchmark file holds
them), so the towers are ids only.

The two-stage list (`two_stage`): the retrieval tower's top `candidates` unrated movies,
ordered by retrieval score plus `rating_weight` times the rating model's predicted deviation
from the global mean (both in the same units: log-odds and stars).
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import polars as pl

from recsys.errors import RecsysError
from recsys.models.network import embed_in_slices, keras_module, tensorflow
from recsys.models.training import TrainReport

if TYPE_CHECKING:
    import keras

USER_ID, MOVIE_ID = "user_id", "movie_id"
USER_VECTOR, MOVIE_VECTOR = "retrieval_user", "retrieval_movie"


@dataclass(frozen=True)
class RetrievalConfig:
    """Architecture and training settings of the retrieval model; recorded with every version.

    Tuned offline on MovieLens 100K's replay (5,000-row days; figures in issue 11's note, not in a
    benchmark file): batch 256 and 20 epochs from fresh weights did best among batches of 128 to
    1024; more epochs gained little.

    Cost: Keras' Adam updates every row of both id tables at every step (its update is dense; see
    `_train_steps` for why it stays so), so a step's time grows with `id_buckets` (measured
    offline, in the same note: 2^14 rows train about twice as fast as 2^16). Hence 2^14 rows
    (MovieLens 100K's 943 users and 1,682 movies fit with few collisions; at MovieLens-32M's 200k
    users a row is shared by about 12), and a full training sees at most `max_pairs_seen` pairs:
    all its epochs on a small history, fewer passes over a large one.
    """

    id_buckets: int = 1 << 14  # rows per hashed id table; ids beyond it share rows
    embedding_dim: int = 32
    learning_rate: float = 3e-3
    warm_learning_rate: float = 1e-3
    batch_size: int = 256
    epochs: int = 20
    max_pairs_seen: int = 2_000_000  # a full training's epochs shrink to see at most this many pairs
    warm_epochs: int = 2
    candidates: int = 50  # movies the retrieval stage hands to the rating model per user
    rating_weight: float = 0.9  # stars of predicted rating worth one unit of retrieval logit
    # A user is matched with the cold user plus this share of what their id row learned (see
    # `user_queries`); 1 is the tower's own output, 0 the cold-start query for everyone.
    user_shrinkage: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("id_buckets", "embedding_dim", "batch_size", "epochs", "max_pairs_seen", "warm_epochs", "candidates"):
            if getattr(self, name) < 1:
                raise RecsysError(f"The retrieval model's {name} must be at least 1, got {getattr(self, name)}.")
        if not 0.0 <= self.user_shrinkage <= 1.0:
            raise RecsysError(f"The retrieval model's user_shrinkage must be between 0 and 1, got {self.user_shrinkage}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def full_epochs(self, pairs: int) -> int:
        """Epochs of a full training on `pairs` pairs: `epochs`, fewer when that would see more
        than `max_pairs_seen`, and always at least one."""
        return max(1, min(self.epochs, self.max_pairs_seen // max(pairs, 1)))


def fresh_retrieval_model(config: RetrievalConfig) -> keras.Model:
    """A new retrieval model (user id -> vector, movie id -> vector), compiled with Adam."""
    keras = keras_module()
    seeds = iter(range(config.seed * 1000 + 500, config.seed * 1000 + 1000))

    def tower(name: str, vector: str) -> tuple[Any, Any]:
        ids = keras.Input((), dtype="int64", name=name)
        rows = keras.layers.Hashing(num_bins=config.id_buckets, name=f"{name}_hash")(ids)
        embedded = keras.layers.Embedding(
            config.id_buckets, config.embedding_dim, name=f"{name}_embedding",
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05, seed=next(seeds)),
        )(rows)  # fmt: skip
        init = keras.initializers.GlorotUniform(seed=next(seeds))
        return ids, keras.layers.Dense(config.embedding_dim, kernel_initializer=init, name=vector)(embedded)

    user_ids, user_vector = tower(USER_ID, USER_VECTOR)
    movie_ids, movie_vector = tower(MOVIE_ID, MOVIE_VECTOR)
    model = keras.Model(
        {USER_ID: user_ids, MOVIE_ID: movie_ids}, {"user": user_vector, "movie": movie_vector}, name="retrieval_two_tower"
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate))
    model.optimizer.build(model.trainable_variables)
    return model


_TOWERS: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()
_STEPS: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


def _towers(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    if model not in _TOWERS:
        keras = keras_module()
        user = keras.Model({USER_ID: model.get_layer(USER_ID).output}, model.get_layer(USER_VECTOR).output)
        movie = keras.Model({MOVIE_ID: model.get_layer(MOVIE_ID).output}, model.get_layer(MOVIE_VECTOR).output)
        _TOWERS[model] = (user, movie)
    return _TOWERS[model]


def in_batch_loss(model: keras.Model, users: Any, movies: Any, log_q: Any) -> Any:
    """The batch's in-batch softmax loss: each user's own movie against the batch's other movies,
    every logit less the log of its movie's share of the pairs (logQ correction)."""
    tf = tensorflow()
    vectors = model({USER_ID: users, MOVIE_ID: movies}, training=True)
    logits = tf.matmul(vectors["user"], vectors["movie"], transpose_b=True) - log_q[None, :]
    # Another pair of the batch with the same movie is no negative for this user.
    size = tf.shape(movies)[0]
    duplicate = tf.equal(movies[:, None], movies[None, :]) & ~tf.eye(size, dtype=tf.bool)
    logits = tf.where(duplicate, tf.constant(-1e9, logits.dtype), logits)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.range(size), logits))


# Batches of one size a traced call runs in a loop inside the graph: a call per batch cost about
# 2 ms of a 4 ms step in Python and dispatch (measured at batch 256).
STEPS_PER_CALL = 16


def _train_steps(model: keras.Model) -> Callable[..., Any]:
    """The traced training loop of `model`: (users, movies, log_q), each (steps, batch), in; the
    sum of the steps' losses out. Each step is one Adam update of every variable.

    Keras' Adam is dense: every row of both id tables moves at every step, as their moment
    estimates decay, which is a step's main cost (it grows with `id_buckets`). Lazy Adam (only
    the rows a batch looks up move) trained 5x as fast at 2^14 rows and cost nothing more at
    2^18, but on MovieLens 100K's replay returning users' NDCG@10 of the retrieval stage fell
    from 0.129 to 0.116 and of the served lists from 0.156 to 0.148 (the rows of rarely seen
    ids learn far less without the momentum that keeps moving them), so the update stays dense.
    """
    if model not in _STEPS:
        tf = tensorflow()
        optimizer, variables = model.optimizer, model.trainable_variables

        def step(users: Any, movies: Any, log_q: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = in_batch_loss(model, users, movies, log_q)
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        ids, shares = tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None, None], tf.float32)

        @tf.function(input_signature=[ids, ids, shares])  # one trace for every shape of call
        def steps(users: Any, movies: Any, log_q: Any) -> Any:
            total = tf.constant(0.0)
            for index in tf.range(tf.shape(users)[0]):
                total += step(users[index], movies[index], log_q[index])
            return total

        _STEPS[model] = steps
    return _STEPS[model]


def train_retrieval(model: keras.Model, pairs: pl.DataFrame, config: RetrievalConfig, *, learning_rate: float, epochs: int) -> TrainReport:
    """Train `model` in place on the (user_id, movie_id) pairs, in seeded shuffled batches."""
    if pairs.height == 0:
        raise RecsysError("The training examples are empty, so there is nothing to train on.")
    tf = tensorflow()
    started = time.perf_counter()
    users = pairs["user_id"].cast(pl.Int64).to_numpy()
    movies = pairs["movie_id"].cast(pl.Int64).to_numpy()
    # Each movie's share of the pairs: how often it is sampled as an in-batch negative.
    share = pairs.group_by("movie_id").len().with_columns(log_q=(pl.col("len") / pairs.height).log())
    log_q = pairs.select("movie_id").join(share, on="movie_id", how="left", maintain_order="left")["log_q"].to_numpy().astype(np.float32)
    model.optimizer.learning_rate = learning_rate
    steps = _train_steps(model)
    rng = np.random.default_rng(config.seed)
    n, batch = len(users), config.batch_size
    full = n // batch * batch
    epoch_losses: list[float] = []
    for _ in range(epochs):
        order = rng.permutation(n)
        # Full batches go STEPS_PER_CALL to a call; the last, shorter batch alone. A batch of one
        # pair has no negatives to learn from: skipped (another pair each epoch).
        calls = [order[s : min(s + STEPS_PER_CALL * batch, full)].reshape(-1, batch) for s in range(0, full, STEPS_PER_CALL * batch)]
        if n - full > 1:
            calls.append(order[full:][None, :])
        # Loss sums stay tensors until the epoch ends: reading each one would wait for it.
        sums = [(steps(tf.constant(users[c]), tf.constant(movies[c]), tf.constant(log_q[c])), c.shape[1]) for c in calls]
        seen = sum(c.size for c in calls)
        epoch_losses.append(sum(float(total) * size for total, size in sums) / max(1, seen))
    seconds = time.perf_counter() - started
    return TrainReport(
        examples=n, epochs=epochs, learning_rate=learning_rate, seconds=seconds,
        examples_per_second=n * epochs / seconds, epoch_losses=epoch_losses,
        first_batch_loss=epoch_losses[0] if epoch_losses else math.nan, first_batch_rows=np.zeros(0, dtype=np.int64),
    )  # fmt: skip


def embed_user_ids(model: keras.Model, user_ids: np.ndarray) -> np.ndarray:
    return embed_in_slices(_towers(model)[0], {USER_ID: np.asarray(user_ids, dtype=np.int64)})


def embed_movie_ids(model: keras.Model, movie_ids: np.ndarray) -> np.ndarray:
    return embed_in_slices(_towers(model)[1], {MOVIE_ID: np.asarray(movie_ids, dtype=np.int64)})


def cold_user_vector(model: keras.Model) -> np.ndarray:
    """The user tower's output for an id it never trained on, without the noise of that id's
    random row: the output layer applied to a zero embedding (its bias, what training taught
    about users in general). What a user with no ratings is matched with."""
    layer = model.get_layer(USER_VECTOR)
    return np.asarray(layer(np.zeros((1, layer.input.shape[-1]), dtype=np.float32)), dtype=np.float32)


def user_queries(model: keras.Model, user_ids: np.ndarray, config: RetrievalConfig) -> np.ndarray:
    """What each user is matched with: the cold user plus `config.user_shrinkage` times the
    deviation their id row learned (shrinkage toward the population, as a Bayesian mean is).

    Why: a user's learned deviation fits the movies they already rated, which a recommendation
    leaves out, and the cold user carries the population's taste. On MovieLens 100K's replay
    (returning users' catalog NDCG@10 of the two-stage list) the tower's own output scored 0.095
    on the first five days and 0.136 on the last five. 0.5 was chosen on the first five (0.120
    there; 0.25 and 0.75 did about as well) and scored 0.176 on the five held out.
    """
    cold = cold_user_vector(model)
    return cold + config.user_shrinkage * (embed_user_ids(model, user_ids) - cold)


def two_stage(
    retrieval_users: np.ndarray,
    retrieval_movies: np.ndarray,
    rating_users: np.ndarray,
    rating_movies: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    n: int,
    config: RetrievalConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's top `n` unrated movies in two stages; returns (columns, deviations), (users, n).

    Stage one: the `config.candidates` unrated movies with the highest retrieval score. Stage two:
    those candidates ordered by retrieval score + rating_weight * (predicted rating - global
    mean), the deviation being the rating towers' dot product (`order_candidates`).
    """
    from recsys.models.ranking import top_n_unrated

    candidates, scores = top_n_unrated(retrieval_users, retrieval_movies, indptr, indices, config.candidates)
    return order_candidates(candidates, scores, rating_users, rating_movies, n, config)


def order_candidates(
    candidates: np.ndarray,
    scores: np.ndarray,
    rating_users: np.ndarray,
    rating_movies: np.ndarray,
    n: int,
    config: RetrievalConfig,
    block_users: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage two: each user's retrieval candidates (columns and scores, -1 where empty) ordered by
    retrieval score + rating_weight * the rating towers' predicted deviation from the global mean;
    the first `n` with their deviations (the predicted rating is the global mean plus it); slots a
    user cannot fill are -1 / nan. No score is clipped, so nothing ties at the top of the scale."""
    users = len(candidates)
    columns = np.full((users, n), -1, dtype=np.int32)
    deviations = np.full((users, n), np.nan, dtype=np.float32)
    kept = min(n, candidates.shape[1])
    for start in range(0, users, block_users):
        stop = min(start + block_users, users)
        block = candidates[start:stop]
        valid = block >= 0
        deviation = np.einsum("ud,ukd->uk", rating_users[start:stop], rating_movies[np.where(valid, block, 0)])
        blended = np.where(valid, scores[start:stop] + config.rating_weight * deviation, -np.inf)
        order = np.argsort(-blended, axis=1, kind="stable")[:, :kept]
        chosen = np.take_along_axis(block, order, axis=1)
        chosen_ok = np.take_along_axis(valid, order, axis=1)
        columns[start:stop, :kept] = np.where(chosen_ok, chosen, -1)
        deviations[start:stop, :kept] = np.where(chosen_ok, np.take_along_axis(deviation, order, axis=1), np.nan)
    return columns, deviations


def cold_start(
    model: keras.Model,
    retrieval_movies: np.ndarray,
    cold_rating_user: np.ndarray,
    rating_movies: np.ndarray,
    n: int,
    config: RetrievalConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The two-stage list of a user with no ratings, one for all of them: the retrieval tower's
    cold user (`cold_user_vector`) picks the candidates, the rating tower's output for no-history
    features (`cold_rating_user`, shape (1, dim)) orders them. Returns (columns, deviations), (n,)."""
    columns, deviations = two_stage(
        cold_user_vector(model), retrieval_movies, cold_rating_user, rating_movies,
        np.zeros(2, np.int64), np.zeros(0, np.int32), n, config,
    )  # fmt: skip
    return columns[0], deviations[0]
