"""One writing process per store at a time, enforced, with a sentence for the one that must wait.

DuckDB lets one process hold a file for writing, but between two runs of a replay the file is
free, so two replays on one store would interleave their days. PostgreSQL takes any number of
writers. So a replay or load holds the store for its whole length: a lock file beside the DuckDB
files (flock, released by the kernel when the process dies, even by SIGKILL), or a PostgreSQL
advisory lock on the store's features database (released when its connection closes).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from recsys.errors import RecsysError
from recsys.stores import duckdb_path, is_postgres_url, open_store, redact


@contextmanager
def hold_store(features_url: str) -> Iterator[None]:
    """Be the store's only writer until the block ends, or fail at once saying who is."""
    if is_postgres_url(features_url):
        with _advisory_lock(features_url):
            yield
    else:
        with _lock_file(Path(duckdb_path(features_url)).expanduser().resolve().parent):
            yield


@contextmanager
def _lock_file(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".writer.lock"
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise RecsysError(f"Store {directory} is in use by {holder}: wait for it to finish, or stop it.") from None
        lock.truncate(0)
        lock.write(f"process {os.getpid()} since {_now()}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    key = zlib.crc32(url.rsplit("/", 1)[-1].encode())  # the database's name: one lock per store
    with open_store(url) as store:
        # Straight through psycopg: the lock is a side effect, to be taken exactly once.
        if not store.connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            holder = store.query(
                "SELECT a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.objid = $key LIMIT 1",
                {"key": key},
            )
            who = (
                f"PostgreSQL session {holder['pid'][0]} since {holder['backend_start'][0]:%Y-%m-%d %H:%M:%S}"
                if holder.height
                else "another writer"
            )
            raise RecsysError(f"Store {redact(url)} is in use by {who}: wait for it to finish, or stop it.")
        try:
            yield
        finally:
            store.connection.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _now() -> str:
    return dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")
