"""Shared fixtures: real DuckDB files, a real PostgreSQL server, and a PostgreSQL with pgvector.

PostgreSQL tests use RECSYS_TEST_PG_URL (default: the local server as user postgres). Each test
gets its own fresh databases, dropped afterwards. When no server answers, the tests skip with a
message saying how to get one, except in CI (CI=true), where a missing server is a failure:
CI must run them, not skip its way to green.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest

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


def _drop_databases(prefix: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        names = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_base(pg_server: str) -> str:
    """A PostgreSQL base URL whose databases (<prefix>_raw, ...) are this test's alone."""
    prefix = f"recsys_test_{uuid.uuid4().hex[:10]}"
    base = pg_server.rsplit("/", 1)[0] + "/" + prefix
    yield base
    _drop_databases(prefix)


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
    with psycopg.connect(pgvector_server, autocommit=True) as admin:
        for (name,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchall():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_base(request, tmp_path: Path) -> str:
    """The base of the three stores: a directory of DuckDB files, or a PostgreSQL server URL."""
    if request.param == "duckdb":
        return str(tmp_path / "stores")
    return request.getfixturevalue("pg_base")
