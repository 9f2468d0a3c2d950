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

from recsys_resources import RecsysError
from recsys_resources.settings import DEFAULT_START_DATE


def _generate(args: argparse.Namespace) -> None:
    from recsys_assets import synthetic

    truth = synthetic.generate(Path(args.out), args.ratings, seed=args.seed)
    print(
        f"Wrote {args.ratings:,} ratings by {truth['n_users']:,} users of {truth['n_movies']:,} movies to {args.out} "
        f"(noise floor MSE {truth['noise_floor_mse']:.4f}; see truth.json)."
    )


def _download(args: argparse.Namespace) -> None:
    from recsys_assets import datasets

    path = datasets.download_movielens(args.name, Path(args.out))
    print(f"{args.name} is in {path}")


def _load(args: argparse.Namespace) -> None:
    _configure(args.data, args.store, args.batch_size, args.bootstrap_rows, DEFAULT_START_DATE, 0)
    from dagster import DagsterInstance

    from recsys_assets.runner import run_job

    with DagsterInstance.ephemeral() if args.ephemeral else DagsterInstance.get() as instance:
        run_job("bootstrap", instance)
    print(f"Loaded {args.data} into {args.store}.")


def _configure(data: str, store: str, batch_size: int, bootstrap_rows: int | None, start_date: str, seed: int) -> None:
    """The environment is the platform's configuration: set it before the definitions load."""
    from recsys_resources import store_urls
    from recsys_resources.settings import parse_start_date
    from recsys_resources.stores import is_postgres_url

    store_urls(store)  # a malformed --store fails here, before anything runs
    parse_start_date(start_date)
    if not is_postgres_url(store):
        store = str(Path(store).resolve())
    os.environ.update(
        RECSYS_STORE=store,
        RECSYS_DATA_DIR=str(Path(data).resolve()),
        RECSYS_BATCH_SIZE=str(batch_size),
        RECSYS_START_DATE=start_date,
        RECSYS_SEED=str(seed),
    )
    if bootstrap_rows is not None:
        os.environ["RECSYS_BOOTSTRAP_ROWS"] = str(bootstrap_rows)
    home = Path(store) / "dagster_home" if not is_postgres_url(store) else Path(".recsys/dagster_home").resolve()
    os.environ.setdefault("DAGSTER_HOME", str(home))
    prepare_local_dagster_home(Path(os.environ["DAGSTER_HOME"]))


def _run_replay(args: argparse.Namespace) -> dict:
    _configure(args.data, args.store, args.batch_size, args.bootstrap_rows, args.start_date, args.seed)
    from recsys_assets.replay import ReplayConfig, replay

    config = ReplayConfig(
        data=os.environ["RECSYS_DATA_DIR"], days=args.days, batch_size=args.batch_size, bootstrap_rows=args.bootstrap_rows,
        start_date=args.start_date, store=os.environ["RECSYS_STORE"], seed=args.seed, range_runs=args.range_runs,
        resume=args.resume,
    )  # fmt: skip
    return replay(config, progress=lambda line: print(line, flush=True))


def _replay(args: argparse.Namespace) -> None:
    from recsys_assets.replay import write_report

    report = _run_replay(args)
    write_report(report, Path(args.report))
    print_mse_table(report)
    print(f"Report: {args.report}")


def print_mse_table(report: dict) -> None:
    columns = ("global_mean", "bias", "champion", "warm", "full")
    print(f"\n{'partition':<12}{'rows':>8}{'rejected':>9}{'checks p/f/w':>14}" + "".join(f"{c:>12}" for c in columns))
    for day in report["days"]:
        checks = day["checks"]
        figures = "".join(f"{day['mse'][c]:>12.4f}" if day["mse"][c] is not None else f"{'-':>12}" for c in columns)
        print(
            f"{day['partition']:<12}{day['rows_clean'] or 0:>8,}{day['rows_rejected'] or 0:>9,}"
            f"{checks['passed']:>8}/{checks['failed']}/{checks['warned']}{figures}"
        )
    means = report["summary"]["mean_mse"]
    print(f"{'mean MSE':<43}" + "".join(f"{means[c]:>12.4f}" if means[c] is not None else f"{'-':>12}" for c in columns))
    summary = report["summary"]
    for protocol, label in (("catalog", "top 10 of all unrated movies"), ("rated", "the day's rated movies reordered")):
        figures = summary["mean_ranking"].get(protocol, {})
        if figures:
            shown = ", ".join(f"{m} {f['ndcg_at_10']:.4f}" for m, f in sorted(figures.items()))
            print(f"mean NDCG@10, {label}: {shown}")
    print(f"{summary['days']} days, {summary['rows_raw']:,} rows in {summary['wall_seconds']:.1f} s ({summary['runs']} Dagster runs).")


def _demo(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    data = home / "data"
    if not (data / "ratings.csv").exists():
        from recsys_assets import synthetic

        print(f"Generating {args.ratings:,} synthetic ratings into {data} ...")
        synthetic.generate(data, args.ratings, seed=args.seed)
    args.data, args.store, args.report = str(data), str(home / "stores"), str(home / "report.json")
    _replay(args)
    truth = json.loads((data / "truth.json").read_text())
    print(
        "\nEach day's MSE is measured before anything trains on it. The noise floor of this synthetic "
        f"archive, the best any model can do, is {truth['noise_floor_mse']:.4f}; an oracle user+item-bias "
        f"model reaches {truth['oracle_bias_mse']:.4f} (truth.json).\n"
        "Open the Dagster UI on this result (lineage, checks, MSE plotted per partition):\n"
        f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']} RECSYS_STORE={os.environ['RECSYS_STORE']} "
        f"RECSYS_DATA_DIR={data} RECSYS_BATCH_SIZE={args.batch_size} RECSYS_BOOTSTRAP_ROWS={args.bootstrap_rows} "
        f"RECSYS_START_DATE={args.start_date} uv run dagster dev -m recsys_assets.definitions\n"
        "Serve its recommendations over HTTP (OpenAPI schema at http://127.0.0.1:8000/docs):\n"
        f"  uv run recsys serve --store {args.store}"
    )


def _serve(args: argparse.Namespace) -> None:
    from recsys_resources import store_urls

    store_urls(args.store)  # a malformed --store fails here, before anything loads
    os.environ["RECSYS_STORE"] = args.store
    import uvicorn

    from recsys_api.app import create_app
    from recsys_api.snapshot import SnapshotSource
    from recsys_resources import Settings

    source = SnapshotSource(Settings.from_env(), refresh_seconds=args.refresh_seconds)
    print(
        f"Serving {source.current.version} as of {source.current.as_of} from {source.current.store} "
        f"on http://{args.host}:{args.port} (OpenAPI schema at /docs and /openapi.json).",
        flush=True,
    )
    try:
        uvicorn.run(create_app(source), host=args.host, port=args.port, log_level=args.log_level)
    except SystemExit:  # uvicorn exits 1 when it cannot bind; say why in one sentence
        raise RecsysError(f"Cannot listen on {args.host}:{args.port}: the address is in use or not available.") from None


def prepare_local_dagster_home(path: Path) -> None:
    """The embedded default's Dagster home: SQLite storage in the folder, no telemetry."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


def _replay_options(parser: argparse.ArgumentParser, batch_size: int, bootstrap_rows: int | None) -> None:
    parser.add_argument("--batch-size", type=int, default=batch_size, help="rows per daily partition")
    parser.add_argument("--bootstrap-rows", type=int, default=bootstrap_rows, help="rows of history before day 0")
    parser.add_argument("--start-date", default="2025-01-01", help="the partition of day 0 (YYYY-MM-DD)")
    parser.add_argument("--store", default=".recsys/replay/stores", help="a directory for DuckDB files or a PostgreSQL server URL")
    parser.add_argument("--seed", type=int, default=0, help="seed of model initialization and shuffling")
    parser.add_argument("--range-runs", action="store_true", help="one Dagster run per week of days (single-run backfill)")
    parser.add_argument("--resume", action="store_true", help="keep the stores and instance instead of starting empty")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a deterministic synthetic MovieLens-format dataset")
    generate.add_argument("--out", required=True, help="directory to write ratings.csv, movies.csv, truth.json")
    generate.add_argument("--ratings", type=int, required=True, help="number of ratings")
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(handler=_generate)

    download = commands.add_parser("download", help="download and unzip a MovieLens archive")
    download.add_argument("name", help="ml-32m, ml-25m, ml-latest, ml-latest-small, ml-1m or ml-100k")
    download.add_argument("--out", default="data", help="directory to unzip into")
    download.set_defaults(handler=_download)

    load = commands.add_parser("load", help="load an archive and build what the first day stands on (the bootstrap job)")
    load.add_argument("--data", required=True, help="directory of a MovieLens or Netflix Prize dataset")
    load.add_argument("--store", default=".recsys/stores", help="a directory for DuckDB files or a PostgreSQL server URL")
    load.add_argument("--batch-size", type=int, default=50_000)
    load.add_argument("--bootstrap-rows", type=int, default=None)
    load.add_argument("--ephemeral", action="store_true", help="record the run in a throwaway Dagster instance")
    load.set_defaults(handler=_load)

    replay = commands.add_parser("replay", help="replay an archive as daily partitions through Dagster")
    replay.add_argument("--data", required=True, help="directory of a MovieLens or Netflix Prize dataset")
    replay.add_argument("--days", type=int, required=True, help="daily partitions to replay")
    replay.add_argument("--report", required=True, help="where to write the JSON report")
    _replay_options(replay, batch_size=50_000, bootstrap_rows=None)
    replay.set_defaults(handler=_replay)

    serve = commands.add_parser("serve", help="serve recommendations over HTTP from the newest serving set")
    serve.add_argument(
        "--store", default=os.environ.get("RECSYS_STORE") or ".recsys/replay/stores",
        help="a directory of DuckDB files or a PostgreSQL server URL, as for replay (default: $RECSYS_STORE or replay's)",
    )  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--refresh-seconds", type=float, default=60.0, help="how often to look for a newer serving set (0: never)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser("demo", help="the main job on the embedded default (DuckDB, no server)")
    demo.add_argument("--home", default=".recsys/demo", help="where data, stores, models and the Dagster home go")
    demo.add_argument("--ratings", type=int, default=600_000, help="size of the synthetic archive")
    demo.add_argument("--days", type=int, default=21, help="daily partitions to replay")
    _replay_options(demo, batch_size=20_000, bootstrap_rows=150_000)
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
