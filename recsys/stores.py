"""The three databases (raw, lake, features) behind one small interface.

A store is addressed by a URL: a DuckDB file (the embedded default, no server) or a PostgreSQL
database reached through psycopg 3. Everything the pipeline does with a store goes through the
handful of methods of `Store`: run a schema file from `sql/`, execute a statement, read a query
into a Polars frame, and bulk-write a Polars frame. Bulk writes never go row by row: DuckDB scans
the frame's Arrow buffers, PostgreSQL receives it through COPY.

Queries name their parameters `$name` (DuckDB's own syntax); the PostgreSQL store rewrites them to
psycopg's `%(name)s`, so one SQL text serves both.
"""

from __future__ import annotations

import io
import re
import time
from abc import ABC, abstractmethod
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import polars as pl

from recsys.errors import RecsysError

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

Dialect = Literal["duckdb", "postgres"]
Params = dict[str, Any] | None

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
LOCK_WAIT_SECONDS = 15.0


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if not is_postgres_url(url):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def duckdb_path(url: str) -> str:
    """The file behind a DuckDB URL: `duckdb:///abs/path.duckdb`, `duckdb:rel.duckdb` or a bare path."""
    if url.startswith("duckdb://"):
        return url[len("duckdb://") :]
    if url.startswith("duckdb:"):
        return url[len("duckdb:") :]
    if "://" in url:
        raise RecsysError(
            f"Store URL {redact(url)!r} is not supported: use postgresql://user@host:port/db or a DuckDB file path."
        )
    return url


class Store(ABC):
    """One open connection to one logical database."""

    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url

    # -- statements -------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: Params = None) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Params = None) -> pl.DataFrame: ...

    @abstractmethod
    def insert(self, table: str, frame: pl.DataFrame) -> int:
        """Bulk-append `frame` to `table` (columns matched by name); returns the row count."""

    def insert_batches(self, table: str, frames: Iterable[pl.DataFrame]) -> int:
        """Bulk-append a stream of frames of one schema, in one transaction; returns the row count."""
        with self.transaction():
            return sum(self.insert(table, frame) for frame in frames)

    def clear(self, table: str) -> None:
        """Delete every row of `table`, inside the caller's transaction."""
        self.execute(f"DELETE FROM {table}")

    def analyze(self, *tables: str) -> None:
        """Refresh the planner's statistics of `tables` after a bulk load. DuckDB keeps its own as it
        writes; PostgreSQL's (`PostgresStore`) wait for autovacuum, which may be off or not yet run."""

    @contextmanager
    def indexes_built_after(self, table: str) -> Iterator[None]:
        """Inside the caller's transaction: `table`'s secondary indexes dropped for a bulk load and
        built again after it. DuckDB's tables here have none."""
        yield

    def vacuum(self, *tables: str) -> None:
        """Mark the pages of rows just written as visible to every transaction, outside any
        transaction. DuckDB has nothing to mark; PostgreSQL's index-only scans (`PostgresStore`)
        read such pages from the index alone, and fetch each row of the others from the table."""

    @abstractmethod
    def transaction(self) -> Any:
        """Context manager: everything inside commits together or not at all."""

    @abstractmethod
    def close(self) -> None: ...

    # -- conveniences built on the above ----------------------------------------------------------
    def scalar(self, sql: str, params: Params = None) -> Any:
        frame = self.query(sql, params)
        return frame.item(0, 0) if frame.height else None

    def apply_schema(self, name: str) -> None:
        """Run `sql/<name>.sql`, then `sql/<name>.<dialect>.sql` where a dialect needs extras, then
        `sql/<name>.upgrade.sql` when the store still holds a layout it replaces: its first line,
        `-- when: <query>`, counts what there is to upgrade, and it runs in one transaction."""
        for path in (SQL_DIR / f"{name}.sql", SQL_DIR / f"{name}.{self.dialect}.sql"):
            if path.exists():
                for statement in split_statements(path.read_text()):
                    self.execute(statement)
        upgrade = SQL_DIR / f"{name}.upgrade.sql"
        if upgrade.exists():
            script = upgrade.read_text()
            condition = script.splitlines()[0].removeprefix("-- when:")
            if self.scalar(condition):
                with self.transaction():
                    for statement in split_statements(script):
                        self.execute(statement)

    def run_file(self, name: str, params: Params = None, *, fill: dict[str, object] | None = None) -> None:
        """Run the statements of `sql/<name>.sql` in order (no schema variants), with each
        `{key}` of `fill` replaced by its value first (for what DDL cannot take as a parameter)."""
        for statement in split_statements(sql_script(name, fill)):
            self.execute(statement, params)

    def read_sql(self, name: str, params: Params = None) -> pl.DataFrame:
        """Run the single query in `sql/<name>.sql` and return its rows."""
        return self.query((SQL_DIR / f"{name}.sql").read_text(), params)

    def replace(self, table: str, where: str, params: Params, frame: pl.DataFrame) -> int:
        """Delete the rows `where` selects and insert `frame`, in one transaction (idempotent writes)."""
        with self.transaction():
            self.execute(f"DELETE FROM {table} WHERE {where}", params)
            return self.insert(table, frame)

    def table_exists(self, table: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = $table",
                {"table": table},
            )
        )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sql_script(name: str, fill: dict[str, object] | None = None) -> str:
    """The text of `sql/<name>.sql`, each `{key}` of `fill` replaced by its value."""
    script = (SQL_DIR / f"{name}.sql").read_text()
    for key, value in (fill or {}).items():
        script = script.replace(f"{{{key}}}", str(value))
    return script


def split_statements(script: str) -> list[str]:
    """Split a schema file on semicolons that end a line (our DDL has no semicolons inside strings)."""
    without_comments = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", without_comments) if s.strip()]


class DuckDBStore(Store):
    dialect: Dialect = "duckdb"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        import duckdb

        super().__init__(url)
        path = duckdb_path(url)
        if read_only and not Path(path).expanduser().is_file():
            raise RecsysError(f"There is no DuckDB store at {path}: run the pipeline on this store first.")
        if path != ":memory:" and not read_only:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # DuckDB lets one process at a time hold a file for writing (readers too take a lock), so
        # a second process (the API refreshing, a run starting) waits a little for the other one.
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                self.connection = duckdb.connect(path, read_only=read_only)
                break
            except duckdb.IOException as error:
                if "lock" in str(error).lower() and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise RecsysError(f"Cannot open DuckDB store {path}: {str(error).splitlines()[0]}") from None
        self._depth = 0

    def execute(self, sql: str, params: Params = None) -> None:
        self.connection.execute(sql, params or {})

    def query(self, sql: str, params: Params = None) -> pl.DataFrame:
        return pl.from_arrow(self.connection.sql(sql, params=params or None).to_arrow_table())

    def insert(self, table: str, frame: pl.DataFrame) -> int:
        if frame.height == 0:
            return 0
        columns = ", ".join(frame.columns)
        self.connection.register("_frame_to_insert", frame.to_arrow())
        try:
            self.connection.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _frame_to_insert")
        finally:
            self.connection.unregister("_frame_to_insert")
        return frame.height

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # Nested use joins the outer transaction, as PostgreSQL's does below.
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.connection.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        else:
            self.connection.execute("COMMIT")
        finally:
            self._depth = 0

    def close(self) -> None:
        self.connection.close()


# PostgreSQL type OIDs that need a Polars type other than text when read back through COPY.
_PG_TYPES: dict[int, pl.DataType] = {
    16: pl.Boolean,
    20: pl.Int64,
    21: pl.Int16,
    23: pl.Int32,
    700: pl.Float32,
    701: pl.Float64,
    1700: pl.Float64,
    1082: pl.Date,
    1114: pl.Datetime("us"),
    1184: pl.Datetime("us", "UTC"),
}


class PostgresStore(Store):
    dialect: Dialect = "postgres"

    def __init__(self, url: str, *, create_database: bool = True) -> None:
        import psycopg

        super().__init__(url)
        try:
            self.connection = psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as error:
            if create_database and "does not exist" in str(error):
                ensure_postgres_database(url)
                self.connection = psycopg.connect(url, autocommit=True, connect_timeout=5)
            else:
                raise RecsysError(
                    f"Cannot connect to PostgreSQL at {redact(url)}: {first_line(error)}"
                ) from None
        except psycopg.ProgrammingError as error:
            raise RecsysError(f"Store URL {redact(url)!r} is not a valid PostgreSQL URL: {first_line(error)}") from None

    def execute(self, sql: str, params: Params = None) -> None:
        self.connection.execute(_to_psycopg(sql, params), params or None)

    def query(self, sql: str, params: Params = None) -> pl.DataFrame:
        statement = _to_psycopg(sql, params).strip().rstrip(";")
        with self.connection.cursor() as cursor:
            # The column names and types come from a zero-row run; the rows come through COPY,
            # which is several times faster than fetching tuples for the large reads we do.
            cursor.execute(f"SELECT * FROM ({statement}) AS q LIMIT 0", params or None)
            names = [d.name for d in cursor.description]
            types = {d.name: _PG_TYPES.get(d.type_code, pl.String) for d in cursor.description}
            buffer = io.BytesIO()
            with cursor.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv)", params or None) as copy:
                for chunk in copy:
                    buffer.write(chunk)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=types)
        # Booleans arrive as t/f, which Polars' CSV reader does not take: read them as text first.
        read_types = {n: (pl.String if t == pl.Boolean else t) for n, t in types.items()}
        frame = pl.read_csv(buffer.getvalue(), has_header=False, new_columns=names, schema=read_types)
        booleans = [n for n, t in types.items() if t == pl.Boolean]
        return frame.with_columns(pl.col(n) == "t" for n in booleans) if booleans else frame

    def insert(self, table: str, frame: pl.DataFrame) -> int:
        return self.insert_batches(table, [frame])

    def insert_batches(self, table: str, frames: Iterable[pl.DataFrame]) -> int:
        """One binary COPY for the rows of every frame that fit it (numbers, all set), a CSV COPY
        after it for the others (text, NULLs): a stream is loaded without ever being whole."""
        rows, others = 0, []
        with self.transaction(), self.connection.cursor() as cursor:
            with ExitStack() as binary:
                copy, columns = None, []
                for frame in frames:
                    binary_rows, other_rows, layouts = _split_for_binary_copy(frame)
                    rows += frame.height
                    if copy is not None and list(layouts) != columns:  # a frame of other columns
                        binary_rows, other_rows = binary_rows.clear(), frame
                    others.append(other_rows)
                    if binary_rows.height == 0:
                        continue
                    if copy is None:
                        # Binary COPY skips PostgreSQL's text parsing: ~40% faster on numeric rows.
                        columns = list(layouts)
                        copy = binary.enter_context(cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)"))
                        copy.write(_BINARY_HEADER)
                    for chunk in binary_rows.select(columns).iter_slices(250_000):
                        copy.write(_binary_tuples(chunk, layouts))
                if copy is not None:
                    copy.write(_BINARY_TRAILER)
            other_rows = _with_array_literals(pl.concat(others)) if others else pl.DataFrame()
            if other_rows.height:
                statement = f"COPY {table} ({', '.join(other_rows.columns)}) FROM STDIN (FORMAT csv)"
                with cursor.copy(statement) as csv_copy:
                    # Chunks keep the CSV text of a large frame from being held all at once.
                    for chunk in other_rows.iter_slices(250_000):
                        csv_copy.write(chunk.write_csv(include_header=False))
        return rows

    def analyze(self, *tables: str) -> None:
        # Without this, after the bootstrap's 5M examples the planner still took training_examples
        # for a small table and sorted the drift check's window of it instead of scanning its
        # index: 4.3 s on each of the first days, 0.6 s with statistics.
        for table in tables:
            self.execute(f"ANALYZE {table}")

    @contextmanager
    def indexes_built_after(self, table: str) -> Iterator[None]:
        # One sort per index after the load, where each row went into each index as it came: a new
        # bootstrap of 5M examples over a store holding 5.5M took 170 s against 218 s (by hand, at
        # MovieLens-32M's shape; 93 s with the old rows truncated, not deleted). Indexes behind
        # constraints stay.
        indexes = self.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $table "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = CAST($table AS regclass))",
            {"table": table},
        )
        for name in indexes["indexname"]:
            self.execute(f"DROP INDEX {name}")
        yield
        for definition in indexes["indexdef"]:
            self.execute(definition)

    def vacuum(self, *tables: str) -> None:
        # Autovacuum does this too, when it is on and gets round to it; until then an index-only
        # scan of the day's users fetches their newest rows from the table. A day's 50k rows take
        # VACUUM about 0.1 s; the bootstrap's 5M about 5 s.
        for table in tables:
            self.execute(f"VACUUM {table}")

    def clear(self, table: str) -> None:
        # TRUNCATE leaves no dead row versions behind (a DELETE of 32M rows leaves 32M for VACUUM),
        # and inside a transaction it is rolled back like any other statement.
        self.execute(f"TRUNCATE {table}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.connection.transaction():
            yield

    def close(self) -> None:
        self.connection.close()


# PostgreSQL's binary COPY format: a signature, flags and extension length, tuples, then -1.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
_BINARY_TYPES = {pl.Int64: ">i8", pl.Int32: ">i4", pl.Int16: ">i2", pl.Float64: ">f8", pl.Float32: ">f4"}


def _with_array_literals(frame: pl.DataFrame) -> pl.DataFrame:
    """List columns as PostgreSQL array literals ({1,2,3}), which COPY's CSV input parses into
    the column's array type (CSV has no nested values)."""
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    return frame.with_columns(
        pl.concat_str(pl.lit("{"), pl.col(name).cast(pl.List(pl.String)).list.join(","), pl.lit("}")).alias(name)
        for name in lists
    )


def _split_for_binary_copy(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, tuple[str, object]]]:
    """Rows whose fixed-width columns are all set and other columns all NULL go in binary.

    Those rows have one fixed layout, so numpy can encode them in bulk; the rest (text, NULLs)
    go through CSV COPY. Raw archive rows are almost all of the first kind. Fixed-width here: the
    numeric columns, lists of numbers of one length (a vector, a full top-N list) and a text
    column holding one value (a serving set's version), each without NULLs in the frame.
    Returns the binary rows, the others, and each binary column's `_binary_layout`, which holds
    for any slice of the binary rows.
    """
    layouts = {name: layout for name in frame.columns if (layout := _binary_layout(frame[name])) is not None}
    fixed = list(layouts)
    others = [name for name in frame.columns if name not in layouts]
    if not fixed:
        return frame.clear(), frame, {}
    simple = pl.all_horizontal(
        *(pl.col(name).is_not_null() for name in fixed), *(pl.col(name).is_null() for name in others)
    )
    split = frame.with_columns(_simple=simple)
    binary_rows = split.filter(pl.col("_simple")).select(fixed)
    other_rows = split.filter(~pl.col("_simple")).drop("_simple")
    return binary_rows, other_rows, layouts


# The element type OIDs of the arrays binary COPY writes (float4[], bigint[], ...).
_ARRAY_ELEMENT_OIDS = {pl.Float32: 700, pl.Float64: 701, pl.Int64: 20, pl.Int32: 23, pl.Int16: 21}


def _binary_layout(column: pl.Series) -> tuple[str, object] | None:
    """How a column goes into binary COPY: ("number", its big-endian dtype), ("array", its element
    dtype and length) or ("text", its one value as bytes); None where it cannot (it goes as CSV)."""
    dtype = column.dtype
    if dtype in _BINARY_TYPES:
        return "number", _BINARY_TYPES[dtype]
    if len(column) == 0 or column.null_count():
        return None
    if isinstance(dtype, (pl.List, pl.Array)) and dtype.inner in _ARRAY_ELEMENT_OIDS:
        lists = column.cast(pl.List(dtype.inner))
        lengths = lists.list.len()
        width = int(lengths.min())
        # One length, not empty, no NULL element (an empty list would explode to a NULL).
        if width == 0 or lengths.max() != width or lists.explode().null_count():
            return None
        return "array", (dtype.inner, width)
    if dtype == pl.String and column.n_unique() == 1 and column[0] != "":
        return "text", column[0].encode()
    return None


def _binary_tuples(frame: pl.DataFrame, layouts: dict[str, tuple[str, object]]) -> bytes:
    """Encode rows as binary COPY tuples, column by column, each column as its `_binary_layout`
    (from `_split_for_binary_copy`) says. An array value is its header (1 dimension, no NULLs, the
    element type, its length, lower bound 1) followed by each element's length and value."""
    layout = [("field_count", ">i2")]
    for name, (kind, spec) in layouts.items():
        if kind == "number":
            layout += [(f"{name}__length", ">i4"), (name, spec)]
        elif kind == "text":
            layout += [(f"{name}__length", ">i4"), (name, f"S{len(spec)}")]
        else:
            inner, width = spec
            header = [(f"{name}__{field}", ">i4") for field in ("length", "ndim", "flags", "oid", "size", "lbound")]
            layout += [*header, (f"{name}__elements", [("length", ">i4"), ("value", _BINARY_TYPES[inner])], (width,))]
    tuples = np.zeros(frame.height, dtype=np.dtype(layout))
    tuples["field_count"] = frame.width
    for name, (kind, spec) in layouts.items():
        if kind == "number":
            tuples[f"{name}__length"] = tuples.dtype[name].itemsize
            tuples[name] = frame[name].to_numpy()
        elif kind == "text":
            tuples[f"{name}__length"] = len(spec)
            tuples[name] = spec
        else:
            inner, width = spec
            elements = tuples[f"{name}__elements"]
            tuples[f"{name}__length"] = tuples.dtype[f"{name}__elements"].itemsize + 20  # the header's 5 ints
            tuples[f"{name}__ndim"], tuples[f"{name}__oid"] = 1, _ARRAY_ELEMENT_OIDS[inner]
            tuples[f"{name}__size"], tuples[f"{name}__lbound"] = width, 1
            elements["length"] = np.dtype(_BINARY_TYPES[inner]).itemsize
            elements["value"] = frame[name].cast(pl.Array(inner, width)).to_numpy().reshape(frame.height, width)
    return tuples.tobytes()


def _to_psycopg(sql: str, params: Params) -> str:
    if not params:
        return sql  # psycopg leaves a statement without parameters untouched
    # With parameters psycopg reads % as a placeholder marker: a literal % (LIKE 'a%') is doubled.
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def ensure_postgres_database(url: str) -> None:
    """Create the database a PostgreSQL URL names, connecting to the server's `postgres` database."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        raise RecsysError(f"Cannot create PostgreSQL database {name!r} at {redact(url)}: {first_line(error)}") from None


def open_store(url: str, *, read_only: bool = False) -> Store:
    """Open the store a URL names: PostgreSQL for postgresql:// URLs, otherwise a DuckDB file.

    read_only: for readers (the API) that must neither create the store nor block writers longer
    than they read (DuckDB); a PostgreSQL database is then not created either.
    """
    if not url:
        raise RecsysError("No store URL is configured: set RECSYS_STORE to a directory or a PostgreSQL URL.")
    if is_postgres_url(url):
        return PostgresStore(url, create_database=not read_only)
    return DuckDBStore(url, read_only=read_only)
