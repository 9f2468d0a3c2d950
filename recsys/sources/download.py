"""Fetch a MovieLens archive: streamed to disk, unpacked beside it, renamed into place when complete."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from recsys.errors import RecsysError
from recsys.sources.readers import detect_layout

MOVIELENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
MOVIELENS_NAMES = ("ml-32m", "ml-25m", "ml-latest", "ml-latest-small", "ml-1m", "ml-100k")


def download_movielens(name: str, dest: Path, base_url: str = MOVIELENS_BASE_URL) -> Path:
    """Download and unpack the MovieLens archive `name` under `dest`; return its dataset directory.

    The archive is streamed to disk (never held in memory) and unpacked into a scratch folder that
    is renamed into place only when complete, so an interrupted run never looks finished. A
    dataset already unpacked at `dest/name` is returned without touching the network.
    """
    if name not in MOVIELENS_NAMES:
        raise RecsysError(
            f"{name!r} is not a MovieLens dataset this platform knows "
            f"(choose one of {', '.join(MOVIELENS_NAMES)})."
        )
    dest = Path(dest)
    dataset_dir = dest / name
    if _holds_dataset(dataset_dir):
        return dataset_dir
    url = f"{base_url}{name}.zip"
    archive = dest / f"{name}.zip"
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RecsysError(f"{dest} cannot be created: {error.strerror or error}.") from error
    if not zipfile.is_zipfile(archive):
        _download(url, archive)
    if not zipfile.is_zipfile(archive):
        archive.unlink()
        raise RecsysError(f"{archive} downloaded from {url} is not a zip archive.")
    extracted = _extract_single_folder(archive, dest)
    archive.unlink()
    return extracted


def _holds_dataset(path: Path) -> bool:
    try:
        detect_layout(path)
    except RecsysError:
        return False
    return True


def _download(url: str, archive: Path) -> None:
    """Stream `url` to `archive` through a .part file, so a broken transfer never looks complete."""
    partial = archive.with_name(archive.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except urllib.error.HTTPError as error:
        partial.unlink(missing_ok=True)
        raise RecsysError(f"could not download {url}: HTTP {error.code} {error.reason}.") from error
    except urllib.error.URLError as error:
        partial.unlink(missing_ok=True)
        raise RecsysError(f"could not download {url}: {error.reason}.") from error
    except (OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise RecsysError(f"could not download {url}: {error}.") from error
    partial.replace(archive)


def _extract_single_folder(archive: Path, dest: Path) -> Path:
    """Unpack `archive` and move its single top-level folder to `dest`; return that folder."""
    scratch = dest / f".{archive.stem}.extracting"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            # extractall drops ".." and absolute parts of member names, so nothing escapes `scratch`.
            zipped.extractall(scratch)
    except (zipfile.BadZipFile, OSError) as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RecsysError(f"{archive} could not be unpacked: {error}.") from error
    top_level = [entry for entry in scratch.iterdir() if entry.name != "__MACOSX"]
    if len(top_level) != 1 or not top_level[0].is_dir():
        shutil.rmtree(scratch, ignore_errors=True)
        raise RecsysError(f"{archive} does not hold a single top-level dataset folder.")
    target = dest / top_level[0].name
    shutil.rmtree(target, ignore_errors=True)
    top_level[0].replace(target)
    shutil.rmtree(scratch, ignore_errors=True)
    return target
