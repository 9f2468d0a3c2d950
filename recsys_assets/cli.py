"""The `recsys` command.

`recsys demo` is the main job on the embedded default: it generates a synthetic archive, loads it
through the Dagster assets into DuckDB stores, materializes the first daily lake partitions and
prints what happened. Every user-facing error ends in one sentence and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recsys_resources import RecsysError


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
    from recsys_resources import store_urls

    store_urls(args.store)  # a malformed --store fails here, before anything runs
    os.environ["RECSYS_STORE"] = args.store
    os.environ["RECSYS_DATA_DIR"] = str(Path(args.data).resolve())
    os.environ["RECSYS_BATCH_SIZE"] = str(args.batch_size)
    if args.bootstrap_rows is not None:
        os.environ["RECSYS_BOOTSTRAP_ROWS"] = str(args.bootstrap_rows)
    from dagster import DagsterInstance

    from recsys_assets.runner import run_job

    with DagsterInstance.ephemeral() if args.ephemeral else DagsterInstance.get() as instance:
        run_job("bootstrap", instance)
    print(f"Loaded {args.data} into {args.store}.")


def _demo(args: argparse.Namespace) -> None:
    home = Path(args.home).resolve()
    data_dir = home / "data"
    # The environment is the platform's configuration; set it before the definitions load.
    os.environ["RECSYS_STORE"] = str(home / "stores")
    os.environ["RECSYS_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home"))
    prepare_local_dagster_home(Path(os.environ["DAGSTER_HOME"]))
    if not (data_dir / "ratings.csv").exists():
        from recsys_assets import synthetic

        print(f"Generating {args.ratings:,} synthetic ratings into {data_dir} ...")
        synthetic.generate(data_dir, args.ratings, seed=args.seed)

    from recsys_assets.runner import run_demo

    run_demo(days=args.days, out=sys.stdout)
    print(
        "\nOpen the Dagster UI on this result:\n"
        f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']} RECSYS_STORE={os.environ['RECSYS_STORE']} "
        f"RECSYS_DATA_DIR={data_dir} uv run dagster dev -m recsys_assets.definitions"
    )


def prepare_local_dagster_home(path: Path) -> None:
    """The embedded default's Dagster home: SQLite storage in the folder, no telemetry."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


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

    demo = commands.add_parser("demo", help="the main job on the embedded default (DuckDB, no server)")
    demo.add_argument("--home", default=".recsys/demo", help="where data, stores and the Dagster home go")
    demo.add_argument("--ratings", type=int, default=400_000)
    demo.add_argument("--days", type=int, default=3, help="daily partitions to materialize")
    demo.add_argument("--seed", type=int, default=0)
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
