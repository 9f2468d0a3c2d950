"""Model artifacts: .keras files with their optimizer state, identified by a sha256 checked on load."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recsys.errors import RecsysError
from recsys.models.config import (
    GLOBAL_MEAN_INPUT,
    MOVIE_INPUT,
    MOVIE_TOWER,
    USER_INPUT,
    USER_TOWER,
    ModelConfig,
)
from recsys.models.factors import MovieFactors
from recsys.models.network import id_rows_layer, keras_module

if TYPE_CHECKING:
    import keras


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# The archive entry that holds a rating model's movie factors beside Keras' own files (Keras
# reads only the entries it wrote), so the factors share the artifact's checksum and atomic write.
FACTORS_ENTRY = "recsys_movie_factors.npz"


def save_model(model: keras.Model, path: Path | str, factors: MovieFactors | None = None) -> str:
    """Write `model` with its optimizer state (and the movie factors its inputs are made from) to
    a .keras file and return the file's sha256.

    The .keras file records when it was saved (to the second), so saving the same model twice
    gives two checksums: the checksum identifies the file, not the weights. Keras restores an optimizer's
    state only if the saved optimizer was built (it otherwise warns "Skipping variable loading
    for optimizer" and starts from zero moments); `fresh_model` builds it, so every model made
    here saves its full state even before training.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise RecsysError(f"Model artifact {path} must have the .keras suffix.")
    # Written beside its final name, flushed to disk, then renamed over it: a crash mid-save
    # leaves the previous file whole (a rename within a directory is atomic), never a torn one.
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(partial)
        if factors is not None:
            buffer = io.BytesIO()
            # The fit's state is kept in float32, half the size (it adds about 14 MB to an
            # artifact at MovieLens-32M's users and movies); a relative error of 1e-7 in a movie's
            # sums moves its ridge solution about as little.
            state = {"user_ids": factors.user_ids}
            for name in ("user_side", "movie_sums"):
                value = getattr(factors, name)
                state[name] = None if value is None else value.astype(np.float32)
            np.savez(buffer, movie_ids=factors.movie_ids, rows=factors.rows, **{k: v for k, v in state.items() if v is not None})
            with zipfile.ZipFile(partial, "a") as archive:
                archive.writestr(FACTORS_ENTRY, buffer.getvalue())
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise RecsysError(f"Model artifact {path} cannot be written: {error.strerror or error}.") from error
    finally:
        partial.unlink(missing_ok=True)
    return file_sha256(path)


def verified(path: Path | str, expected_sha256: str) -> Path:
    """`path`, once it exists, matches its recorded checksum and is a zip archive."""
    path = Path(path)
    if not path.is_file():
        raise RecsysError(
            f"Model artifact {path} does not exist (artifacts of versions older than the retention window, "
            "other than each stage's champion and latest full model, are deleted: see artifact_retention_days)."
        )
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise RecsysError(
            f"Model artifact {path} does not match its recorded checksum "
            f"(expected sha256 {expected_sha256[:12]}..., found {actual[:12]}...)."
        )
    if not zipfile.is_zipfile(path):
        # Checked here because Keras reports a file that is not a zip archive as "File not found".
        raise RecsysError(f"Model artifact {path} is not a valid .keras model file (it is not a zip archive).")
    return path


def load_factors(path: Path | str, expected_sha256: str) -> MovieFactors | None:
    """The movie factors saved with the model at `path` (None for a model without them)."""
    path = verified(path, expected_sha256)
    with zipfile.ZipFile(path) as archive:
        if FACTORS_ENTRY not in archive.namelist():
            return None
        with np.load(io.BytesIO(archive.read(FACTORS_ENTRY))) as saved:
            # Factors saved before their fit's state was kept have none (see MovieFactors).
            state = {name: saved[name] for name in ("user_ids", "user_side", "movie_sums") if name in saved.files}
            return MovieFactors(movie_ids=saved["movie_ids"], rows=saved["rows"], **state)


def load_model(path: Path | str, expected_sha256: str, layers: frozenset[str] | None = None) -> keras.Model:
    """The model saved at `path`, with its optimizer state, once the file's sha256 matches and it
    has the named `layers` (by default the rating model's inputs and towers)."""
    path = verified(path, expected_sha256)
    keras = keras_module()
    id_rows_layer()  # registers the project's own layer, which Keras must know by name to load
    try:
        model = keras.models.load_model(path, compile=True)
    except Exception as error:  # Keras raises ValueError, OSError, KeyError, BadZipFile, ... here
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RecsysError(f"Model artifact {path} is not a valid .keras model file ({first_line}).") from error
    names = {layer.name for layer in model.layers}
    needed = layers if layers is not None else {USER_INPUT, MOVIE_INPUT, GLOBAL_MEAN_INPUT, USER_TOWER, MOVIE_TOWER}
    if not needed <= names or model.optimizer is None:
        # Missing layers name what is wrong, e.g. an artifact saved before a layer was renamed.
        missing = f" (it lacks the layer(s) {', '.join(sorted(needed - names))})" if not needed <= names else ""
        raise RecsysError(f"Model artifact {path} holds no compiled two-tower model with its optimizer{missing}.")
    return model


def warm_start(
    parent_path: Path | str, checksum: str, config: ModelConfig, layers: frozenset[str] | None = None
) -> keras.Model:
    """The parent model, verified by `checksum`, with its optimizer state, at the warm learning rate."""
    model = load_model(parent_path, checksum, layers)
    model.optimizer.learning_rate = config.warm_learning_rate
    return model
