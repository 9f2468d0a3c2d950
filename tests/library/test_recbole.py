"""MovieLens 100K from the RecBole wheel: found on a package index, checked, converted to ml-100k.

No test downloads anything: a wheel built here from a synthetic archive is served by a local
PEP 503 index over HTTP, through the same code path a benchmark takes to PyPI.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from recsys.errors import RecsysError
from recsys.sources.readers import Layout, detect_layout, read_raw_movies, read_raw_ratings
from recsys.sources.recbole import ATOMIC_DIR, RECBOLE_WHEEL, fetch_ml_100k

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
    "377\tHeavyweights\t1994\tChildren's Comedy\n400\tNo Year\t\tunknown\n"
)


def wheel(inter: str = INTER, item: str = ITEM) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{ATOMIC_DIR}/ml-100k.inter", inter)
        archive.writestr(f"{ATOMIC_DIR}/ml-100k.item", item)
        archive.writestr("recbole/__init__.py", "")
    return buffer.getvalue()


@pytest.fixture
def index():
    """A local simple index: /simple/recbole/ lists the wheel (with its sha256), served from memory."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def publish(payload: bytes, digest: str | None = None) -> str:
        digest = digest or hashlib.sha256(payload).hexdigest()
        files["/packages/" + RECBOLE_WHEEL] = payload
        files["/simple/recbole/"] = f'<a href="../../packages/{RECBOLE_WHEEL}#sha256={digest}">{RECBOLE_WHEEL}</a>'.encode()
        return f"http://127.0.0.1:{server.server_address[1]}/simple"

    yield publish
    server.shutdown()


def test_the_wheel_becomes_an_ml_100k_folder_the_readers_know(index, tmp_path):
    folder = fetch_ml_100k(tmp_path, index_url=index(wheel()))
    assert folder == tmp_path / "ml-100k" and detect_layout(folder) == Layout.ML_100K
    ratings = read_raw_ratings(folder)
    assert ratings.select("user_id", "movie_id", "rating", "timestamp").rows() == [
        ("196", "242", "3", "881250949"), ("186", "302", "3", "891717742"), ("22", "377", "1", "878887116"),
    ]  # fmt: skip
    movies = read_raw_movies(folder).sort("movie_id")
    assert movies.rows() == [
        ("242", "Kolya (1996)", "1996", "Comedy"),
        ("302", "L.A. Confidential (1997)", "1997", "Crime|Film-Noir|Mystery|Thriller"),
        ("377", "Heavyweights (1994)", "1994", "Children|Comedy"),
        ("400", "No Year", None, "(no genres listed)"),
    ]
    # A second call finds the folder and needs no index at all.
    assert fetch_ml_100k(tmp_path, index_url="http://127.0.0.1:9/simple") == folder


def test_a_wheel_that_does_not_match_its_checksum_or_lacks_the_files_is_refused(index, tmp_path):
    with pytest.raises(RecsysError, match="does not match the sha256 the index states"):
        fetch_ml_100k(tmp_path / "a", index_url=index(wheel(), digest="0" * 64))
    with pytest.raises(RecsysError, match="holds no MovieLens 100K atomic files"):
        fetch_ml_100k(tmp_path / "b", index_url=index(b"PK\x05\x06" + b"\x00" * 18))
    assert not (tmp_path / "a" / "ml-100k").exists() and not (tmp_path / "b" / "ml-100k").exists()


def test_an_index_without_the_wheel_or_out_of_reach_says_so(index, tmp_path):
    url = index(wheel())
    with pytest.raises(RecsysError, match="lists no recbole-9.9.9-py3-none-any.whl"):
        fetch_ml_100k(tmp_path, index_url=url, wheel="recbole-9.9.9-py3-none-any.whl")
    with pytest.raises(RecsysError, match=r"could not download http://127.0.0.1:9/simple/recbole/"):
        fetch_ml_100k(tmp_path, index_url="http://127.0.0.1:9/simple")
