"""The retrieval stage: it learns which movies users choose, two stages order its candidates with
the rating model, and its artifacts warm-start like the rating model's."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import polars as pl
import pytest

from recsys.errors import RecsysError
from recsys.models import ranking, retrieval
from recsys.models.artifacts import load_model, save_model, warm_start
from recsys.models.network import id_rows_layer, keras_module, tensorflow
from recsys.models.retrieval import (
    RetrievalConfig,
    cold_user_vector,
    embed_movie_ids,
    embed_user_ids,
    fresh_retrieval_model,
    train_retrieval,
    two_stage,
    user_queries,
)
from recsys.models.versions import RETRIEVAL_LAYERS, latest_pairs
from recsys.settings import store_urls
from recsys.stores import open_store

CONFIG = RetrievalConfig(batch_size=32, epochs=30, seed=3)


def choices(rng: np.random.Generator) -> pl.DataFrame:
    """Two tastes: users 0-29 pick among movies 100-119, users 30-59 among 200-219, each about
    half of their 20 movies; with every user held out of 4 of their movies."""
    rows = []
    for user in range(60):
        movies = np.arange(100, 120) if user < 30 else np.arange(200, 220)
        for movie in rng.choice(movies, 10, replace=False):
            rows.append((user, int(movie)))
    return pl.DataFrame(rows, schema=["user_id", "movie_id"], orient="row")


def test_the_retrieval_model_learns_which_movies_each_user_chooses():
    pairs = choices(np.random.default_rng(0))
    model = fresh_retrieval_model(CONFIG, pairs)
    report = train_retrieval(model, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=CONFIG.epochs)
    assert report.epoch_losses[-1] < report.epoch_losses[0] * 0.8
    users, movies = np.arange(60), np.concatenate([np.arange(100, 120), np.arange(200, 220)])
    indptr, indices = ranking.rated_positions(pairs, users, movies)
    columns, _ = ranking.top_n_unrated(embed_user_ids(model, users), embed_movie_ids(model, movies), indptr, indices, 5)
    own_taste = np.where(users[:, None] < 30, movies[columns] < 200, movies[columns] >= 200)
    # Chance would be one half: the model must put each user's own kind of movie first.
    assert own_taste.mean() > 0.8


def test_two_stages_take_retrieval_candidates_and_order_them_with_the_rating_model():
    # One user, five movies; movie 1 is rated. Retrieval scores 4, 3, 2, 1, 0 -> candidates
    # (3 of them, rated excluded): movies 0, 2, 3. The rating model's deviations 0, -, 1, 3, 9:
    # blended with weight 0.5: 4, 2.5, 2.5 (a tie kept in retrieval order), and movie 4 (9) is
    # no candidate, so never recommended, whatever its predicted rating.
    retrieval_users, retrieval_movies = np.array([[1.0]], np.float32), np.array([[4.0], [3.0], [2.0], [1.0], [0.0]], np.float32)
    rating_users, rating_movies = np.array([[1.0]], np.float32), np.array([[0.0], [5.0], [1.0], [3.0], [9.0]], np.float32)
    indptr, indices = np.array([0, 1]), np.array([1], np.int32)
    config = RetrievalConfig(candidates=3, rating_weight=0.5)
    columns, deviations = two_stage(retrieval_users, retrieval_movies, rating_users, rating_movies, indptr, indices, 3, config)
    assert columns.tolist() == [[0, 2, 3]] and deviations.tolist() == [[0.0, 1.0, 3.0]]
    # A stronger weight lets the rating model reorder the candidates: 4 + 0, 2 + 2, 1 + 6.
    columns, _ = two_stage(retrieval_users, retrieval_movies, rating_users, rating_movies, indptr, indices, 2, RetrievalConfig(candidates=3, rating_weight=2.0))
    assert columns.tolist() == [[3, 0]]
    # Fewer candidates than asked for: the rest of the row is empty.
    columns, deviations = two_stage(retrieval_users, retrieval_movies, rating_users, rating_movies, indptr, indices, 5, config)
    assert columns.tolist() == [[0, 2, 3, -1, -1]] and np.isnan(deviations[0, 3:]).all()


def test_a_saved_retrieval_model_warm_starts_where_it_stopped(tmp_path):
    pairs = choices(np.random.default_rng(1))
    model = fresh_retrieval_model(CONFIG, pairs)
    train_retrieval(model, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=2)
    path = tmp_path / "retrieval.keras"
    checksum = save_model(model, path)
    loaded = load_model(path, checksum, RETRIEVAL_LAYERS)
    ids = np.array([0, 31, 10**12])  # an id without a row too
    np.testing.assert_allclose(embed_user_ids(loaded, ids), embed_user_ids(model, ids), rtol=1e-6)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    warmed = warm_start(path, checksum, CONFIG, RETRIEVAL_LAYERS)
    assert float(warmed.optimizer.learning_rate) == pytest.approx(CONFIG.warm_learning_rate)
    # The rating model's loader refuses a retrieval artifact: it lacks the rating model's layers.
    with pytest.raises(Exception, match=r"holds no compiled two-tower model with its optimizer \(it lacks the layer\(s\) "):
        load_model(path, checksum)


def test_batches_run_many_to_a_call_as_they_would_one_by_one(monkeypatch):
    # 600 pairs in batches of 32: calls of 16 batches, of the 2 left, and of the last 24 pairs,
    # against a call per batch; the same updates in the same order give the same weights.
    pairs = choices(np.random.default_rng(4))
    trained = []
    for per_call in (16, 1):
        monkeypatch.setattr(retrieval, "STEPS_PER_CALL", per_call)
        model = fresh_retrieval_model(CONFIG, pairs)
        report = train_retrieval(model, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=2)
        assert int(model.optimizer.iterations) == 2 * 19
        trained.append((embed_user_ids(model, np.arange(60)), report.epoch_losses))
    np.testing.assert_allclose(trained[0][0], trained[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trained[0][1], trained[1][1], rtol=1e-5)


def keras_adam(model, pairs: pl.DataFrame, config: RetrievalConfig, epochs: int) -> None:
    """The same training with Keras' own Adam on every variable, a call per batch."""
    tf = tensorflow()
    optimizer, variables = model.optimizer, model.trainable_variables

    @tf.function
    def step(users, movies, log_q):
        with tf.GradientTape() as tape:
            loss = retrieval.in_batch_loss(model, users, movies, log_q)
        optimizer.apply(tape.gradient(loss, variables), variables)

    users, movies = pairs["user_id"].cast(pl.Int64).to_numpy(), pairs["movie_id"].cast(pl.Int64).to_numpy()
    log_q = retrieval.movie_log_shares(pairs)
    optimizer.learning_rate = config.learning_rate
    rng = np.random.default_rng(config.seed)
    for _ in range(epochs):
        order = rng.permutation(len(users))
        for start in range(0, len(users), config.batch_size):
            batch = order[start : start + config.batch_size]
            if len(batch) > 1:
                step(tf.constant(users[batch]), tf.constant(movies[batch]), tf.constant(log_q[batch]))


@pytest.mark.parametrize("ids", [4, None])
def test_lazy_adam_trains_the_id_tables_as_keras_adam_does(ids):
    # With 4 users and 4 movies every row is looked up at every step: the updates are Keras'
    # own, to float precision. With 60 users and 40 movies most rows sit out most steps and
    # catch up when looked up again (and at the end): close to Keras' dense motion, far from
    # leaving it out.
    pairs = choices(np.random.default_rng(4))
    if ids is not None:
        pairs = pairs.with_columns(pl.col("user_id") % ids, pl.col("movie_id") % ids)
    lazy, dense, fresh = (fresh_retrieval_model(CONFIG, pairs) for _ in range(3))
    train_retrieval(lazy, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=5)
    keras_adam(dense, pairs, CONFIG, epochs=5)
    for table in ("user_id_embedding", "movie_id_embedding"):
        learned, wanted, start = (m.get_layer(table).embeddings.numpy() for m in (lazy, dense, fresh))
        moved = np.linalg.norm(wanted - start)
        assert np.linalg.norm(learned - wanted) < (1e-4 if ids == 4 else 0.05) * moved


def test_a_retrieval_model_no_longer_used_is_freed_with_what_was_built_for_it():
    pairs = choices(np.random.default_rng(0))
    model = fresh_retrieval_model(CONFIG, pairs)
    train_retrieval(model, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=1)
    embed_user_ids(model, np.arange(3))
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


def test_the_same_seed_gives_the_same_retrieval_model():
    pairs = choices(np.random.default_rng(2))
    vectors = []
    for _ in range(2):
        model = fresh_retrieval_model(CONFIG, pairs)
        train_retrieval(model, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=2)
        vectors.append(embed_movie_ids(model, np.arange(100, 120)))
    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_a_full_training_sees_at_most_its_budget_of_pairs():
    config = RetrievalConfig(epochs=20, max_pairs_seen=1_000_000)
    assert config.full_epochs(50_000) == 20 and config.full_epochs(200_000) == 5 and config.full_epochs(5_000_000) == 1


def test_a_full_training_learns_from_the_latest_pairs_it_may_see(store_base):
    """On a history larger than its budget, a full training reads the latest pairs up to its
    batch, in replay order: never a later batch's, never an older pair in a newer one's place."""
    with open_store(store_urls(store_base)["features"]) as db:
        # Only the columns the read needs: the feature store's examples carry every feature too.
        db.execute("CREATE TABLE training_examples (seq BIGINT, batch INTEGER, user_id BIGINT, movie_id BIGINT)")
        rows = pl.DataFrame({"seq": range(12), "batch": [0] * 6 + [1] * 3 + [2] * 3, "user_id": range(100, 112), "movie_id": range(12)})
        db.insert("training_examples", rows.sample(fraction=1.0, shuffle=True, seed=1).cast({"batch": pl.Int32}))
        latest = latest_pairs(db, 1, 5)
        assert latest["movie_id"].to_list() == [4, 5, 6, 7, 8] and latest["batch"].to_list() == [0, 0, 1, 1, 1]
        assert latest_pairs(db, 2, 100)["movie_id"].to_list() == list(range(12))


def test_ids_keep_the_rows_they_were_given_in_order_through_a_save(tmp_path):
    """Rows follow the order ids were given in, not their sort order (a warm start appends new
    ids, smaller ones too), an id not given is row 0, and a saved model maps ids as before."""
    keras = keras_module()
    given = np.array([40, 10, 30, 20, -5])
    ids = keras.Input((), dtype="int64", name="ids")
    lookup = id_rows_layer()(len(given), name="rows")
    lookup.set_ids(given)
    model = keras.Model(ids, lookup(ids))
    asked = np.array([10, 20, 30, 40, -5, 25, -1, 10**12])
    assert model(asked).numpy().tolist() == [2, 4, 3, 1, 5, 0, 0, 0]
    assert lookup.ids().tolist() == given.tolist()
    model.save(tmp_path / "rows.keras")
    loaded = keras.models.load_model(tmp_path / "rows.keras")
    assert loaded(asked).numpy().tolist() == [2, 4, 3, 1, 5, 0, 0, 0]
    assert loaded.get_layer("rows").ids().tolist() == given.tolist()


def test_the_cold_user_is_what_training_taught_about_users_in_general():
    """The cold user is the user tower's output layer on a zero embedding; an id never trained on
    has no row and comes out as exactly it, and users trained on are far from it."""
    pairs = choices(np.random.default_rng(0))
    model = fresh_retrieval_model(CONFIG, pairs)
    train_retrieval(model, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=CONFIG.epochs)
    cold = cold_user_vector(model)
    layer = model.get_layer("retrieval_user")
    assert cold.shape == (1, CONFIG.embedding_dim) and np.allclose(cold[0], np.asarray(layer.bias))
    trained = embed_user_ids(model, np.arange(60))
    np.testing.assert_allclose(embed_user_ids(model, np.array([60, 10**9])), np.repeat(cold, 2, 0), rtol=1e-6)
    assert np.linalg.norm(trained - cold, axis=1).min() > 0.1 * np.linalg.norm(cold)


def test_a_warm_start_gives_the_days_new_ids_rows_and_keeps_every_learned_one():
    pairs = choices(np.random.default_rng(0))
    earlier = pairs.filter(pl.col("user_id") < 50)
    model = fresh_retrieval_model(CONFIG, earlier)
    train_retrieval(model, earlier, CONFIG, learning_rate=CONFIG.learning_rate, epochs=CONFIG.epochs)
    assert retrieval.with_rows_for(model, earlier.head(100), CONFIG) is model  # no new id, no copy
    # The day: users 20-59, of whom 50-59 are new (taste of movies 200-219), and so is movie 300.
    day = pl.concat([pairs.filter(pl.col("user_id") >= 20), pl.DataFrame({"user_id": [55], "movie_id": [300]})])
    grown = retrieval.with_rows_for(model, day, CONFIG)
    users, movies = np.arange(50), np.arange(200, 220)
    np.testing.assert_array_equal(embed_user_ids(grown, users), embed_user_ids(model, users))
    np.testing.assert_array_equal(embed_movie_ids(grown, movies), embed_movie_ids(model, movies))
    assert int(grown.optimizer.iterations) == int(model.optimizer.iterations)
    table = grown.get_layer("user_id_embedding").embeddings
    velocity = np.asarray(grown.optimizer._velocities[grown.optimizer._get_variable_index(table)])
    old_rows = model.get_layer("user_id_embedding").embeddings.shape[0]
    assert table.shape[0] == old_rows + 10 and (velocity[1:old_rows] > 0).all() and (velocity[old_rows:] == 0).all()
    new_users, cold = np.arange(50, 60), cold_user_vector(grown)
    assert np.linalg.norm(embed_user_ids(grown, new_users) - cold, axis=1).min() > 0  # rows of their own
    # Trained on the day, the new users learn their taste: their own kind of movie first.
    train_retrieval(grown, day, CONFIG, learning_rate=CONFIG.learning_rate, epochs=CONFIG.epochs)
    catalog = np.concatenate([np.arange(100, 120), movies])
    indptr, indices = ranking.rated_positions(day, new_users, catalog)
    columns, _ = ranking.top_n_unrated(embed_user_ids(grown, new_users), embed_movie_ids(grown, catalog), indptr, indices, 5)
    assert (catalog[columns] >= 200).mean() > 0.8


def test_a_users_query_is_the_cold_user_plus_a_share_of_what_their_id_learned():
    pairs = choices(np.random.default_rng(0))
    model = fresh_retrieval_model(CONFIG, pairs)
    train_retrieval(model, pairs, CONFIG, learning_rate=CONFIG.learning_rate, epochs=CONFIG.epochs)
    users = np.arange(60)
    own, cold = embed_user_ids(model, users), cold_user_vector(model)
    np.testing.assert_allclose(user_queries(model, users, RetrievalConfig(user_shrinkage=1.0)), own, rtol=1e-6)
    np.testing.assert_allclose(user_queries(model, users, RetrievalConfig(user_shrinkage=0.0)), np.repeat(cold, 60, 0), rtol=1e-6)
    halfway = user_queries(model, users, RetrievalConfig(user_shrinkage=0.5))
    np.testing.assert_allclose(halfway - cold, (own - cold) / 2, rtol=1e-5, atol=1e-6)
    # Shrunk, the queries still tell the two tastes apart: each user's own kind of movie first.
    movies = np.concatenate([np.arange(100, 120), np.arange(200, 220)])
    indptr, indices = ranking.rated_positions(pairs, users, movies)
    columns, _ = ranking.top_n_unrated(halfway, embed_movie_ids(model, movies), indptr, indices, 5)
    assert np.where(users[:, None] < 30, movies[columns] < 200, movies[columns] >= 200).mean() > 0.8


@pytest.mark.parametrize("shrinkage", [-0.1, 1.5])
def test_a_shrinkage_outside_zero_to_one_is_refused(shrinkage):
    with pytest.raises(RecsysError, match="user_shrinkage must be between 0 and 1"):
        RetrievalConfig(user_shrinkage=shrinkage)
