"""The `recsys` command.

`recsys demo` is the main job on the embedded default: it generates a synthetic archive, replays
three weeks of daily partitions and their weekly retrains through Dagster into DuckDB stores, and
prints the day-by-day MSE against the baselines. `recsys replay` does the same on any archive and
store. Every user-facing error ends in one sentence and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from recsys.calendar import parse_date
from recsys.errors import RecsysError
from recsys.settings import DEFAULT_SEED, DEFAULT_START_DATE, Settings, store_urls
from recsys.stores import is_postgres_url, redact
from recsys.writer_lock import hold_store


# The demo's stores go under its --home unless --store says otherwise.
DEMO_STORE = "HOME/stores"
UI_URL = "http://127.0.0.1:3000"


def parse_drift(spec: str, ratings: int, batch_size: int, bootstrap_rows: int | None) -> dict:
    """A drift scenario for the generator, from replay day DAY (under the replay's batching) on:
    `DAY:genre_appeal[:GENRE[:SHIFT]]` (Comedy, -1.5 stars), `DAY:new_population[:COUNT[:SHARE]]`
    (a quarter as many new users as there are, half the ratings) or `DAY:catalog_growth[:COUNT[:SHARE]]`
    (a tenth as many new movies, 30% of the ratings)."""
    from recsys.raw.archive import default_bootstrap_rows
    from recsys.sources.synthetic import population_size

    parts = spec.split(":")
    kinds = ("genre_appeal", "new_population", "catalog_growth")
    if len(parts) < 2 or parts[1] not in kinds or not parts[0].isdigit():
        raise RecsysError(f"Drift {spec!r} is not DAY:KIND[:...] with KIND one of {', '.join(kinds)} (e.g. 4:genre_appeal:Comedy:-1.5).")
    day, kind = int(parts[0]), parts[1]
    start = default_bootstrap_rows(ratings, bootstrap_rows, batch_size) + day * batch_size
    try:
        if kind == "genre_appeal":
            shift = float(parts[3]) if len(parts) > 3 else -1.5
            return {"kind": kind, "day": day, "from_row": start, "genre": parts[2] if len(parts) > 2 else "Comedy", "shift": shift}
        users, movies = population_size(ratings)
        count = int(parts[2]) if len(parts) > 2 else (users // 4 if kind == "new_population" else movies // 10)
        share = float(parts[3]) if len(parts) > 3 else (0.5 if kind == "new_population" else 0.3)
    except ValueError:
        raise RecsysError(f"Drift {spec!r} has a count or share that is not a number.") from None
    return {"kind": kind, "day": day, "from_row": start, "count": count, "share": share}


def _generate(args: argparse.Namespace) -> None:
    from recsys.sources import synthetic

    drift = [parse_drift(spec, args.ratings, args.batch_size, args.bootstrap_rows) for spec in args.drift]
    shape = {k: v for k, v in (("n_users", args.users), ("n_movies", args.movies)) if v is not None}
    behaviour = synthetic.INDEPENDENT_PARAMS if args.independent else {}
    truth = synthetic.generate(Path(args.out), args.ratings, seed=args.seed, drift=drift, **shape, **behaviour)
    print(
        f"Wrote {args.ratings:,} ratings by {truth['n_users']:,} users of {truth['n_movies']:,} movies to {args.out} "
        f"(noise floor MSE {truth['noise_floor_mse']:.4f}; see truth.json)."
    )


def _download(args: argparse.Namespace) -> None:
    from recsys.sources.download import download_movielens

    path = download_movielens(args.name, Path(args.out))
    print(f"{args.name} is in {path}")


def resolved_store(store: str) -> str:
    """A store directory made absolute (a run may start elsewhere), or the PostgreSQL URL as given."""
    store_urls(store)  # a malformed --store fails here, before anything runs
    return store if is_postgres_url(store) else str(Path(store).resolve())


def replay_settings(
    data: str, store: str, batch_size: int, bootstrap_rows: int | None, start_date: str, seed: int,
    rating_id_dim: int = 0, rating_factors: int = 5,
) -> Settings:
    """The settings a replay or load runs with: its arguments, not the environment."""
    return Settings.for_store(
        resolved_store(store),
        data_dir=str(Path(data).resolve()),
        start_date=parse_date(start_date),
        batch_size=batch_size,
        bootstrap_rows=bootstrap_rows,
        seed=seed,
        rating_id_dim=rating_id_dim,
        rating_factors=rating_factors,
    )


def dagster_home(settings: Settings) -> Path:
    """$DAGSTER_HOME, or the embedded default's: beside the DuckDB stores (SQLite storage, no telemetry)."""
    default = Path(settings.raw_url).parent / "dagster_home" if not is_postgres_url(settings.raw_url) else Path(".recsys/dagster_home")
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # As the repository root's dagster.yaml: runs go one at a time (DuckDB has one writer).
        config.write_text("run_queue:\n  max_concurrent_runs: 1\ntelemetry:\n  enabled: false\n")
    return home


def _load(args: argparse.Namespace) -> None:
    settings = replay_settings(args.data, args.store, args.batch_size, args.bootstrap_rows, DEFAULT_START_DATE, DEFAULT_SEED)
    from dagster import DagsterInstance

    from recsys_assets.definitions import build_definitions
    from recsys_assets.runs import run_job

    home = dagster_home(settings)
    with hold_store(settings.raw_url):
        with DagsterInstance.ephemeral() if args.ephemeral else DagsterInstance.from_config(str(home)) as instance:
            run_job(build_definitions(settings), "bootstrap", instance)
    print(f"Loaded {args.data} into {redact(args.store)}.")


def _run_replay(args: argparse.Namespace) -> dict:
    settings = replay_settings(
        args.data, args.store, args.batch_size, args.bootstrap_rows, args.start_date, args.seed, args.rating_id_dim,
        args.rating_factors,
    )
    from recsys.cli.replay import ReplayConfig, replay

    config = ReplayConfig(
        data=settings.data_dir, days=args.days, batch_size=args.batch_size, bootstrap_rows=args.bootstrap_rows,
        start_date=args.start_date, store=resolved_store(args.store),
        seed=args.seed, range_runs=args.range_runs, resume=args.resume, feature_time=args.feature_time,
        drift_retrain=not args.no_drift_retrain,
    )  # fmt: skip
    return replay(config, settings, dagster_home(settings), progress=lambda line: print(line, flush=True))


def _replay(args: argparse.Namespace) -> None:
    from recsys.cli.replay import print_mse_table, write_report

    report = _run_replay(args)
    chart = write_report(report, Path(args.report))
    print_mse_table(report)
    print(f"Report: {args.report} (MSE per day drawn in {chart})")


def _demo(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    data = home / "data"
    if not (data / "ratings.csv").exists():
        from recsys.sources import synthetic

        print(f"Generating {args.ratings:,} synthetic ratings into {data} ...")
        synthetic.generate(data, args.ratings, seed=args.seed)
    args.data, args.report = str(data), str(home / "report.json")
    args.store = str(home / "stores") if args.store == DEMO_STORE else args.store
    _replay(args)
    settings = replay_settings(args.data, args.store, args.batch_size, args.bootstrap_rows, args.start_date, args.seed)
    truth = json.loads((data / "truth.json").read_text())
    print(
        "\nEach day's MSE is measured before anything trains on it. The noise floor of this synthetic "
        f"archive, the best any model can do, is {truth['noise_floor_mse']:.4f}; an oracle user+item-bias "
        f"model reaches {truth['oracle_bias_mse']:.4f} (truth.json).\n"
        f"{ui_command(settings, args)}\n"
        "Serve its recommendations over HTTP (OpenAPI schema at http://127.0.0.1:8000/docs):\n"
        f"  uv run recsys serve --store {redact(args.store)}"
    )


def ui_command(settings: Settings, args: argparse.Namespace) -> str:
    """How to open the Dagster UI on what the demo ran: `make ui` where the defaults point (the
    repository root's dagster.yaml and settings), else `dagster dev` with the demo's environment."""
    defaults = Settings.from_env({})
    here = Path.cwd()
    if (
        (here / "dagster.yaml").is_file()
        and Path(settings.raw_url) == (here / defaults.raw_url).resolve()
        and Path(settings.data_dir) == (here / defaults.data_dir).resolve()
        and settings.start_date == defaults.start_date
        and "DAGSTER_HOME" not in os.environ
    ):
        return f"Open the Dagster UI on this result (lineage, checks, metrics per day) at {UI_URL}:\n  make ui"
    return (
        f"Open the Dagster UI on this result (lineage, checks, metrics per day) at {UI_URL}:\n"
        f"  DAGSTER_HOME={dagster_home(settings)} RECSYS_STORE={redact(args.store)} RECSYS_DATA_DIR={settings.data_dir} "
        f"RECSYS_START_DATE={args.start_date} uv run dagster dev -m recsys_assets.definitions -p 3000"
    )


def _serve(args: argparse.Namespace) -> None:
    store_urls(args.store)  # a malformed --store fails here, before anything loads
    # The environment still configures what --store does not say (the start date, the embedding layout).
    settings = Settings.from_env({**os.environ, "RECSYS_STORE": args.store})
    import uvicorn

    from recsys_api.app import create_app
    from recsys_api.snapshot import SnapshotSource

    source = SnapshotSource(settings, refresh_seconds=args.refresh_seconds)
    print(
        f"Serving {source.current.version} as of {source.current.as_of} from {source.current.store} "
        f"on http://{args.host}:{args.port} (OpenAPI schema at /docs and /openapi.json).",
        flush=True,
    )
    try:
        uvicorn.run(create_app(source), host=args.host, port=args.port, log_level=args.log_level)
    except SystemExit:  # uvicorn exits 1 when it cannot bind; say why in one sentence
        raise RecsysError(f"Cannot listen on {args.host}:{args.port}: the address is in use or not available.") from None


def _replay_options(parser: argparse.ArgumentParser, batch_size: int, bootstrap_rows: int | None, store: str | None) -> None:
    parser.add_argument("--batch-size", type=int, default=batch_size, help="rows per daily partition")
    parser.add_argument("--bootstrap-rows", type=int, default=bootstrap_rows, help="rows of history before day 0")
    parser.add_argument("--start-date", default="2025-01-01", help="the partition of day 0 (YYYY-MM-DD)")
    parser.add_argument("--store", default=store, help="a directory for DuckDB files or a PostgreSQL server URL")
    parser.add_argument("--seed", type=int, default=0, help="seed of model initialization and shuffling")
    parser.add_argument("--range-runs", action="store_true", help="one Dagster run per week of days (single-run backfill)")
    parser.add_argument("--resume", action="store_true", help="keep the stores and instance instead of starting empty")
    parser.add_argument(
        "--no-drift-retrain", action="store_true",
        help="full retrains on the weekly calendar only, never triggered by persisting drift or degradation alarms",
    )  # fmt: skip
    parser.add_argument(
        "--feature-time", choices=["event", "batch"], default="event",
        help="event: features use every earlier rating, the same day included; batch: only earlier days",
    )  # fmt: skip
    parser.add_argument(
        "--rating-id-dim", type=int, default=0,
        help="size of the rating model's hashed user and movie ID embeddings (0: genre features only, measured better)",
    )  # fmt: skip
    parser.add_argument(
        "--rating-factors", type=int, default=5,
        help="latent movie factors of the rating model, each user's folded in at event time (0: the genre towers alone)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        # Every option's help says its default.
        return commands.add_parser(name, help=help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    generate = command("generate", help="write a deterministic synthetic MovieLens-format dataset")
    generate.add_argument("--out", required=True, help="directory to write ratings.csv, movies.csv, truth.json")
    generate.add_argument("--ratings", type=int, required=True, help="number of ratings")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument(
        "--users", type=int, default=None,
        help="users in the population (default: scaled from --ratings, MovieLens-32M's ratio; 200948 with --ratings 32000204)",
    )  # fmt: skip
    generate.add_argument("--movies", type=int, default=None, help="movies in the catalog (default: scaled from --ratings as MovieLens grows)")
    generate.add_argument(
        "--drift", action="append", default=[], metavar="DAY:KIND",
        help="a drift scenario from replay day DAY on: DAY:genre_appeal[:GENRE[:SHIFT]] (e.g. 4:genre_appeal:Comedy:-1.5, "
        "Comedy rated 1.5 stars lower), DAY:new_population[:COUNT[:SHARE]] (new users make SHARE of the ratings), "
        "DAY:catalog_growth[:COUNT[:SHARE]] (new movies get SHARE); days count under --batch-size and --bootstrap-rows; repeatable",
    )  # fmt: skip
    generate.add_argument(
        "--independent", action="store_true",
        help="the generator before sessions and preference-driven choice: every rating draws its user by activity and "
        "its movie by popularity alone (for comparison)",
    )  # fmt: skip
    generate.add_argument("--batch-size", type=int, default=50_000, help="the replay's rows per day, to place --drift days")
    generate.add_argument("--bootstrap-rows", type=int, default=None, help="the replay's bootstrap rows, to place --drift days")
    generate.set_defaults(handler=_generate)

    download = command("download", help="download and unzip a MovieLens archive")
    download.add_argument("name", help="ml-32m, ml-25m, ml-latest, ml-latest-small, ml-1m or ml-100k")
    download.add_argument("--out", default="data", help="directory to unzip into")
    download.set_defaults(handler=_download)

    load = command("load", help="load an archive and build what the first day stands on (the bootstrap job)")
    load.add_argument("--data", required=True, help="directory of a MovieLens or Netflix Prize dataset")
    load.add_argument("--store", default=".recsys/stores", help="a directory for DuckDB files or a PostgreSQL server URL")
    load.add_argument("--batch-size", type=int, default=50_000)
    load.add_argument("--bootstrap-rows", type=int, default=None)
    load.add_argument("--ephemeral", action="store_true", help="record the run in a throwaway Dagster instance")
    load.set_defaults(handler=_load)

    replay = command("replay", help="replay an archive as daily partitions through Dagster")
    replay.add_argument("--data", required=True, help="directory of a MovieLens or Netflix Prize dataset")
    replay.add_argument("--days", type=int, default=None, help="daily partitions to replay (default: all the archive holds)")
    replay.add_argument("--report", required=True, help="where to write the JSON report")
    _replay_options(replay, batch_size=50_000, bootstrap_rows=None, store=".recsys/replay/stores")
    replay.set_defaults(handler=_replay)

    serve = command("serve", help="serve recommendations over HTTP from the newest serving set")
    serve.add_argument(
        "--store", default=os.environ.get("RECSYS_STORE") or ".recsys/replay/stores",
        help="a directory of DuckDB files or a PostgreSQL server URL, as for replay (default: $RECSYS_STORE or replay's)",
    )  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--refresh-seconds", type=float, default=60.0, help="how often to look for a newer serving set (0: never)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(handler=_serve)

    demo = command("demo", help="the main job on the embedded default (DuckDB, no server)")
    demo.add_argument(
        "--home", default=".recsys",
        help="where data, stores (unless --store), models and the Dagster home go; the default is where "
        "`dagster dev` in the repository root looks",
    )  # fmt: skip
    # 150k bootstrap + 21 days of 20k: three complete weeks, each with its retrain.
    demo.add_argument("--ratings", type=int, default=570_000, help="size of the synthetic archive")
    demo.add_argument("--days", type=int, default=None, help="daily partitions to replay (default: all the archive holds)")
    _replay_options(demo, batch_size=20_000, bootstrap_rows=150_000, store=DEMO_STORE)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except RecsysError as error:
        print(f"recsys: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
