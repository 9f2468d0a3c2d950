"""The `recsys` command as a person runs it: real processes, one-sentence errors, exit status 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import run_cli as recsys


@pytest.fixture(scope="module")
def small_archive(make_archive) -> Path:
    return make_archive(3_000, 3)


def test_generate_writes_the_archive_and_its_truth(tmp_path):
    result = recsys("generate", "--out", str(tmp_path / "d"), "--ratings", "2000", "--seed", "5", home=tmp_path / "h")
    assert result.returncode == 0, result.stderr
    truth = json.loads((tmp_path / "d" / "truth.json").read_text())
    assert truth["n_ratings"] == 2000
    assert f"noise floor MSE {truth['noise_floor_mse']:.4f}" in result.stdout
    # The population's shape is the caller's to choose (a MovieLens-32M shape is one command), and
    # a drift scenario is recorded with the rating it starts from.
    result = recsys(
        "generate", "--out", str(tmp_path / "e"), "--ratings", "3000", "--users", "150", "--movies", "200",
        "--drift", "1:genre_appeal:Drama:-1", "--batch-size", "500", "--bootstrap-rows", "1000", home=tmp_path / "h",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    truth = json.loads((tmp_path / "e" / "truth.json").read_text())
    assert (truth["n_users"], truth["n_movies"]) == (150, 200)
    assert truth["drift"] == [{"kind": "genre_appeal", "day": 1, "from_row": 1500, "genre": "Drama", "shift": -1.0}]
    for bad in (["--users", "0"], ["--drift", "x:genre_appeal"], ["--drift", "1:genre_appeal:Nonsense"]):
        result = recsys("generate", "--out", str(tmp_path / "f"), "--ratings", "3000", *bad, home=tmp_path / "h")
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_load_runs_the_bootstrap_job(tmp_path, small_archive):
    stores = tmp_path / "stores"
    result = recsys(
        "load", "--data", str(small_archive), "--store", str(stores), "--batch-size", "500", "--bootstrap-rows", "1000",
        "--ephemeral", home=tmp_path / "h",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (stores / "raw.duckdb").exists() and (stores / "lake.duckdb").exists()


def one_sentence_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("make_dir", "expected"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d, "holds no known dataset layout"),
    ],
)
def test_bad_data_directory_is_one_sentence(tmp_path, make_dir, expected):
    data = make_dir(tmp_path)
    line = one_sentence_error(recsys("load", "--data", str(data), "--store", str(tmp_path / "s"), "--ephemeral", home=tmp_path / "h"))
    assert str(data) in line and expected in line


def test_empty_ratings_file_is_one_sentence(tmp_path, small_archive):
    data = tmp_path / "empty"
    data.mkdir()
    (data / "ratings.csv").write_text("")
    (data / "movies.csv").write_text((small_archive / "movies.csv").read_text())
    line = one_sentence_error(recsys("load", "--data", str(data), "--store", str(tmp_path / "s"), "--ephemeral", home=tmp_path / "h"))
    assert line.endswith(f"{data / 'ratings.csv'} is empty.")


def test_unreachable_postgres_is_one_sentence(tmp_path, small_archive):
    url = "postgresql://postgres@127.0.0.1:1/recsys"
    line = one_sentence_error(recsys("load", "--data", str(small_archive), "--store", url, "--ephemeral", home=tmp_path / "h"))
    assert "Cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/recsys_raw" in line


def test_a_store_that_is_not_a_directory_or_postgres_url_is_one_sentence(tmp_path, small_archive):
    line = one_sentence_error(recsys("load", "--data", str(small_archive), "--store", "mysql://db/x", home=tmp_path / "h"))
    assert line == "recsys: Store 'mysql://db/x' is neither a directory nor a postgresql:// URL."
