"""The Keras 3 two-tower network: building it, its towers alone, and embeddings from them.

TensorFlow and Keras are imported lazily, on the first call that needs them (5-7 s and ~500 MB
here), so importing this module, e.g. while Dagster loads definitions, costs only numpy and
Polars. Before that import, TF_CPP_MIN_LOG_LEVEL=1 (unless set) hides TensorFlow's INFO lines and
keeps its warnings and errors; KERAS_BACKEND defaults to tensorflow. TF 2.21 still prints absl's
"All log messages before absl::InitializeLog()" notice and a oneDNN INFO line (twice each): they
come before the level applies. TF_ENABLE_ONEDNN_OPTS=0 removes them (same speed measured, slightly
different float rounding); this module leaves that choice to the environment.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from recsys.models.config import (
    GLOBAL_MEAN_INPUT,
    MOVIE_FACTORS_INPUT,
    MOVIE_ID_INPUT,
    MOVIE_INPUT,
    MOVIE_INPUT_COLUMNS,
    MOVIE_TOWER,
    OUTPUT,
    OUTPUT_INIT_SCALE,
    USER_FACTORS_INPUT,
    USER_ID_INPUT,
    USER_INPUT,
    USER_INPUT_COLUMNS,
    USER_TOWER,
    ModelConfig,
)
from recsys.models.inputs import factor_inputs, id_inputs, movie_inputs, user_inputs

if TYPE_CHECKING:
    import keras

# Rows per call when a tower or the model runs over many rows.
PREDICT_BATCH = 65_536


def keras_module() -> Any:
    """The keras module; the environment is set before TensorFlow's first import reads it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def tensorflow() -> Any:
    keras_module()
    import tensorflow as tf

    return tf


@functools.cache
def id_rows_layer() -> type:
    """The `IdRows` Keras layer class (made on first use, after Keras' import): each id's row in an
    embedding table, 1 + the id's position among the ids it was given (in their order, so ids
    appended later leave earlier ids' rows alone), 0 for an id not among them.

    The ids are two int64 weights (sorted, and the row of each), searched with `tf.searchsorted`.
    Why not Keras' IntegerLookup: it keeps its vocabulary in the model's JSON config, which Keras
    walks element by element on load. Weights load as arrays: at MovieLens-32M's 200k users and
    87k movies a retrieval artifact loads (checksum included) in 0.25 to 0.31 s, against about
    0.5 s with IntegerLookup (by hand).
    """
    keras = keras_module()
    tf = tensorflow()

    @keras.saving.register_keras_serializable(package="recsys")
    class IdRows(keras.layers.Layer):
        def __init__(self, size: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.size = int(size)
            self.sorted_ids = self.add_weight(shape=(self.size,), dtype="int64", initializer="zeros", trainable=False, name="sorted_ids")
            self.sorted_rows = self.add_weight(shape=(self.size,), dtype="int64", initializer="zeros", trainable=False, name="sorted_rows")

        def set_ids(self, ids: np.ndarray) -> None:
            """Give row i + 1 to ids[i] (ids distinct)."""
            ids = np.asarray(ids, dtype=np.int64)
            order = np.argsort(ids, kind="stable")
            self.sorted_ids.assign(ids[order])
            self.sorted_rows.assign(order.astype(np.int64) + 1)

        def ids(self) -> np.ndarray:
            """The ids in row order (row 1 first)."""
            ids = np.empty(self.size, dtype=np.int64)
            ids[self.sorted_rows.numpy() - 1] = self.sorted_ids.numpy()
            return ids

        def call(self, ids: Any) -> Any:
            if self.size == 0:
                return tf.zeros_like(ids)
            position = tf.minimum(tf.searchsorted(self.sorted_ids, ids), self.size - 1)
            return tf.where(tf.gather(self.sorted_ids, position) == ids, tf.gather(self.sorted_rows, position), tf.zeros_like(ids))

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def compute_output_spec(self, ids: Any) -> Any:
            return keras.KerasTensor(ids.shape, dtype="int64")

        def save_own_variables(self, store: Any) -> None:
            # As Keras' own, less its np.array() of an int64 variable, which NumPy 2 warns about.
            for i, variable in enumerate(self.variables):
                store[f"{i}"] = variable.numpy()

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "size": self.size}

    return IdRows


def build_model(config: ModelConfig) -> keras.Model:
    """The uncompiled two-tower model, its weights initialized from `config.seed`.

    Every initializer gets its own seed, derived from `config.seed`, rather than relying on
    keras.utils.set_random_seed: the weights then do not depend on what else used the global
    random state before, and building a model changes no global state.
    """
    keras = keras_module()
    seeds = iter(range(config.seed * 1000, config.seed * 1000 + 1000))
    user_in = keras.Input((len(USER_INPUT_COLUMNS),), name=USER_INPUT)
    movie_in = keras.Input((len(MOVIE_INPUT_COLUMNS),), name=MOVIE_INPUT)
    global_mean = keras.Input((1,), name=GLOBAL_MEAN_INPUT)

    ids, factors = {}, {}

    def tower(inputs: Any, hidden: tuple[int, ...], name: str, id_name: str, factors_name: str) -> Any:
        x = inputs
        if config.id_dim:
            # Hashed ID embeddings beside the features (seeds 000, 001 and 004 learn them too):
            # Keras' Hashing layer maps any id to a row, so new ids need no vocabulary change.
            ids[id_name] = keras.Input((), dtype="int64", name=id_name)
            rows = keras.layers.Hashing(num_bins=config.id_buckets, name=f"{id_name}_hash")(ids[id_name])
            embedded = keras.layers.Embedding(
                config.id_buckets, config.id_dim, embeddings_initializer="zeros", name=f"{id_name}_embedding"
            )(rows)
            x = keras.layers.Concatenate(name=f"{name}_inputs")([x, embedded])
        for index, units in enumerate(hidden):
            init = keras.initializers.GlorotUniform(seed=next(seeds))
            x = keras.layers.Dense(units, activation="relu", kernel_initializer=init, name=f"{name}_hidden_{index}")(x)
        # A linear output: the vector can hold constants, which is how user and movie biases
        # enter the dot product.
        init = keras.initializers.VarianceScaling(
            scale=OUTPUT_INIT_SCALE, mode="fan_avg", distribution="uniform", seed=next(seeds)
        )
        if not config.factors:
            return keras.layers.Dense(config.embedding_dim, kernel_initializer=init, name=name)(x)
        # The factor model's slots pass through untouched ([x_u, 1] and [q_i, 1, b_i], given as
        # inputs): their dot product is its prediction, and the towers learn what it misses.
        learned = keras.layers.Dense(config.learned_dim, kernel_initializer=init, name=f"{name}_learned")(x)
        factors[factors_name] = keras.Input((config.factor_settings().width,), name=factors_name)
        return keras.layers.Concatenate(name=name)([learned, factors[factors_name]])

    user_vector = tower(user_in, config.user_hidden, USER_TOWER, USER_ID_INPUT, USER_FACTORS_INPUT)
    movie_vector = tower(movie_in, config.movie_hidden, MOVIE_TOWER, MOVIE_ID_INPUT, MOVIE_FACTORS_INPUT)
    affinity = keras.layers.Dot(axes=1, name="affinity")([user_vector, movie_vector])
    rating = keras.layers.Add(name=OUTPUT)([global_mean, affinity])
    return keras.Model(
        inputs={USER_INPUT: user_in, MOVIE_INPUT: movie_in, GLOBAL_MEAN_INPUT: global_mean, **ids, **factors},
        outputs=rating,
        name="genre_two_tower",
    )


def fresh_model(config: ModelConfig) -> keras.Model:
    """A new model with fresh weights, compiled with Adam at `config.learning_rate` and MSE."""
    keras = keras_module()
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss="mse")
    # Create the optimizer's slots now: the traced training step must not create variables.
    model.optimizer.build(model.trainable_variables)
    return model


def built_for(model: keras.Model) -> dict[str, Any]:
    """What is built once per model object (its towers alone, its traced training steps), kept on
    the model itself.

    Why not a global WeakKeyDictionary keyed by the model, as before: its values (towers made of
    the model's layers, steps closing over it) referenced the model, so no model was ever freed
    and a long replay kept every version it loaded (about 4 retrieval models a day at 65 MB of
    weights and moments each at MovieLens-32M's shape). Kept on the model, the whole cycle goes
    when the model does. (The full-shape replay's peak RSS did not move with it, 15.5 to 15.6 GiB
    against 16.2: the weekly retrain's read of every example row set it, and with its towers on
    a window of the latest examples the peak fell to 9.8 GiB.) Written to the instance's __dict__,
    past Keras' attribute tracking: not part of the model, never saved.
    """
    return model.__dict__.setdefault("_recsys_built", {})


def towers(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(user_model, movie_model): each tower alone, from its input matrix to its embedding.

    They share the model's layers (and so its weights); built once per model object.
    """
    built = built_for(model)
    if "towers" not in built:
        keras = keras_module()
        names = {layer.name for layer in model.layers}

        def tower(features: str, id_name: str, factors_name: str, output: str) -> keras.Model:
            inputs = {name: model.get_layer(name).output for name in (features, id_name, factors_name) if name in names}
            return keras.Model(inputs, model.get_layer(output).output, name=output)

        built["towers"] = (
            tower(USER_INPUT, USER_ID_INPUT, USER_FACTORS_INPUT, USER_TOWER),
            tower(MOVIE_INPUT, MOVIE_ID_INPUT, MOVIE_FACTORS_INPUT, MOVIE_TOWER),
        )
    return built["towers"]


def embed_in_slices(tower: keras.Model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """A tower's vectors for the rows of its named `inputs`, PREDICT_BATCH rows per call."""
    n = len(next(iter(inputs.values())))
    parts = [
        np.asarray(tower({k: v[s : s + PREDICT_BATCH] for k, v in inputs.items()}, training=False))
        for s in range(0, n, PREDICT_BATCH)
    ]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros((0, tower.output.shape[-1]), np.float32)


def embed_users(model: keras.Model, users: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The user tower's vectors (n, embedding_dim) for rows with user_id and the user features
    (see `user_inputs`), and with factors their folded-in vectors (`factors.with_user_factors`)."""
    inputs = {USER_INPUT: user_inputs(users, config)}
    if config.id_dim:
        inputs[USER_ID_INPUT] = id_inputs(users, "user_id")
    if config.factors:
        inputs[USER_FACTORS_INPUT] = factor_inputs(users, config, "user")
    return embed_in_slices(towers(model)[0], inputs)


def embed_movies(model: keras.Model, movies: pl.DataFrame, config: ModelConfig) -> np.ndarray:
    """The movie tower's vectors (n, embedding_dim) for rows with movie_id and the movie features
    (see `movie_inputs`), and with factors their factor rows (`factors.with_movie_factors`).

    A predicted rating is global_mean + the dot product of a user's and a movie's vectors.
    """
    inputs = {MOVIE_INPUT: movie_inputs(movies, config)}
    if config.id_dim:
        inputs[MOVIE_ID_INPUT] = id_inputs(movies, "movie_id")
    if config.factors:
        inputs[MOVIE_FACTORS_INPUT] = factor_inputs(movies, config, "movie")
    return embed_in_slices(towers(model)[1], inputs)


