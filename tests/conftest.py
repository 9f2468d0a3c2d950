"""Shared fixtures: real DuckDB files, a real PostgreSQL server, a PostgreSQL with pgvector,
synthetic archives, and the stores' cleanup (helpers.py has the free port and the CLI runner).

The suite is laid out like the code: `library/` tests the `recsys` package without Dagster,
`dagster/` materializes the real assets and runs the CLI and the UI, `api/` talks HTTP.

PostgreSQL tests use RECSYS_TEST_PG_URL (default: the local server as user postgres). Each test
gets its own fresh databases, dropped afterwards. When no server answers, the tests skip with a
message saying how to get one, except in CI (CI=true), where a missing server is a failure:
CI must run them, not skip its way to green.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Callable

import psycopg
import pytest

from recsys.sources import synthetic

PG_URL = os.environ.get("RECSYS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _server_error() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL server URL, or a skip (a failure in CI) saying why there is none."""
    error = _server_error()
    if error:
        message = (
            f"PostgreSQL is not reachable at {PG_URL} ({error}). Start one with "
            "`docker compose up -d postgres` or a local install, or set RECSYS_TEST_PG_URL."
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return PG_URL


def _drop_databases(server_url: str, prefix: str, attempts: int = 3) -> None:
    """Drop every database of a test (named `<prefix>...`) on the server.

    Once, under a fully loaded machine, the pgserver wheel's PostgreSQL 16 dropped the admin
    connection during DROP DATABASE ... WITH (FORCE) after a test had passed; the cleanup is
    tried again on a new connection rather than failing a test that succeeded.
    """
    for attempt in range(attempts):
        try:
            with psycopg.connect(server_url, autocommit=True) as admin:
                names = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchall()
                for (name,) in names:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(2)


@pytest.fixture
def pg_base(pg_server: str) -> str:
    """A PostgreSQL base URL whose databases (<prefix>_raw, ...) are this test's alone."""
    prefix = f"recsys_test_{uuid.uuid4().hex[:10]}"
    base = pg_server.rsplit("/", 1)[0] + "/" + prefix
    yield base
    _drop_databases(PG_URL, prefix)


@pytest.fixture(scope="session")
def pgvector_server(tmp_path_factory) -> str:
    """A PostgreSQL 16 server with the pgvector extension, from the pgserver wheel (a dev
    dependency that bundles both), on a Unix socket in a temporary directory. The local server
    has no pgvector (Debian 12 does not package it), and the vector layout must run for real."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgvector"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def pgvector_base(pgvector_server: str) -> str:
    """A base URL on the pgvector server whose databases are this test's alone."""
    prefix = f"recsys_test_{uuid.uuid4().hex[:10]}"
    path, query = pgvector_server.split("?", 1)
    yield f"{path.rsplit('/', 1)[0]}/{prefix}?{query}"
    _drop_databases(pgvector_server, prefix)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_base(request, tmp_path: Path) -> str:
    """The base of the three stores: a directory of DuckDB files, or a PostgreSQL server URL."""
    if request.param == "duckdb":
        return str(tmp_path / "stores")
    return request.getfixturevalue("pg_base")


@pytest.fixture(scope="session")
def make_archive(tmp_path_factory) -> Callable[..., Path]:
    """make_archive(ratings, seed): a synthetic archive, generated once per session for each
    (ratings, seed); tests that change its files copy it first."""
    made: dict[tuple[int, int], Path] = {}

    def make(ratings: int, seed: int) -> Path:
        if (ratings, seed) not in made:
            path = tmp_path_factory.mktemp(f"archive-{ratings}-{seed}")
            synthetic.generate(path, ratings, seed=seed)
            made[ratings, seed] = path
        return made[ratings, seed]

    return make

