"""Real MovieLens 100K from the RecBole wheel on PyPI, written in the ml-100k layout the readers know.

Why a wheel: GroupLens' own server may be out of reach where PyPI is not, and the `recbole==1.2.1`
wheel ships MovieLens 100K as RecBole "atomic files" (`dataset_example/ml-100k/ml-100k.inter`
and `.item`, tab-separated with typed headers). The wheel is found on a PEP 503 simple index
(PyPI's by default, or any mirror), checked against the index's sha256, and only the two files
are read from it. The data is never committed anywhere: its license forbids redistribution.

The conversion keeps every rating as it is (user, item, rating, timestamp) and writes u.item with
the 19 genre flags of the original (RecBole spells genres as space-separated tokens and drops
the release date; the year it keeps becomes the release date's year).
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import polars as pl

from recsys.errors import RecsysError
from recsys.sources.readers import ML_100K_GENRE_FLAGS

PYPI_SIMPLE = "https://pypi.org/simple"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
ATOMIC_DIR = "recbole/dataset_example/ml-100k"
# RecBole's genre tokens, in u.item's flag order ("Children's" there, "Children" in ml-latest).
RECBOLE_GENRES = ["unknown", *[("Children's" if g == "Children" else g) for g in ML_100K_GENRE_FLAGS[1:]]]


def fetch_ml_100k(dest: Path, index_url: str = PYPI_SIMPLE, wheel: str = RECBOLE_WHEEL) -> Path:
    """MovieLens 100K in `dest/ml-100k` (u.data, u.item), from the RecBole wheel on `index_url`.

    A folder already holding both files is returned as it is, without the network.
    """
    out = Path(dest) / "ml-100k"
    if (out / "u.data").is_file() and (out / "u.item").is_file():
        return out
    package = wheel.split("-")[0]
    url, sha256 = _wheel_url(f"{index_url.rstrip('/')}/{package}/", wheel)
    payload = _get(url)
    if sha256 and hashlib.sha256(payload).hexdigest() != sha256:
        raise RecsysError(f"{wheel} from {url} does not match the sha256 the index states.")
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            inter = archive.read(f"{ATOMIC_DIR}/ml-100k.inter")
            item = archive.read(f"{ATOMIC_DIR}/ml-100k.item")
    except (zipfile.BadZipFile, KeyError) as error:
        raise RecsysError(f"{wheel} from {url} holds no MovieLens 100K atomic files ({error}).") from error
    scratch = out.with_name(".ml-100k.converting")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    atomic_to_ml_100k(inter, item, scratch)
    scratch.replace(out)
    return out


def atomic_to_ml_100k(inter: bytes, item: bytes, out: Path) -> None:
    """Write RecBole's ml-100k.inter and ml-100k.item (their bytes) as u.data and u.item in `out`."""
    ratings = pl.read_csv(inter, separator="\t", quote_char=None)
    ratings.columns = [c.split(":")[0] for c in ratings.columns]
    ratings.select(
        pl.col("user_id").cast(pl.Int64),
        pl.col("item_id").cast(pl.Int64),
        pl.col("rating").cast(pl.Float64).cast(pl.Int64),
        pl.col("timestamp").cast(pl.Float64).cast(pl.Int64),
    ).write_csv(out / "u.data", separator="\t", include_header=False)

    movies = pl.read_csv(item, separator="\t", quote_char=None, infer_schema=False, encoding="utf8-lossy")
    movies.columns = [c.split(":")[0] for c in movies.columns]
    lines = []
    for movie_id, title, year, genres in movies.select("item_id", "movie_title", "release_year", "class").iter_rows():
        tokens = set((genres or "").split())
        flags = "|".join("1" if genre in tokens else "0" for genre in RECBOLE_GENRES)
        year = year if year and re.fullmatch(r"\d{4}", year) else None
        titled = f"{title} ({year})" if year else (title or "")
        # movie id | title | release date | video release date | IMDb URL | 19 flags
        lines.append(f"{movie_id}|{titled}|{f'01-Jan-{year}' if year else ''}|||{flags}")
    (out / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1", errors="replace"))


def _wheel_url(page: str, wheel: str) -> tuple[str, str | None]:
    """The wheel's URL on a simple index page, and the sha256 the page states for it."""
    html = _get(page).decode("utf-8", errors="replace")
    for href in re.findall(r'href="([^"]+)"', html):
        location, _, fragment = href.partition("#")
        if location.rsplit("/", 1)[-1] == wheel:
            digest = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
            return urllib.request.urljoin(page, location), digest
    raise RecsysError(f"The package index page {page} lists no {wheel}.")


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise RecsysError(f"could not download {url}: HTTP {error.code} {error.reason}.") from error
    except urllib.error.URLError as error:
        raise RecsysError(f"could not download {url}: {error.reason}.") from error
    except (OSError, ValueError) as error:
        raise RecsysError(f"could not download {url}: {error}.") from error
