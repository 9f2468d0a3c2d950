"""docker-compose.yml, deploy/dagster.yaml and workspace.yaml agree with each other and with the code.

There is no Docker engine on the development machines, so the compose file is checked statically.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
INSTANCE = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())


def env_vars_in(node) -> set[str]:
    """Every `env: NAME` the Dagster instance config reads."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(env_vars_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(env_vars_in(v) for v in node))
    return set()


def test_services_of_the_production_layout():
    assert set(COMPOSE["services"]) == {"postgres", "user_code", "webserver", "daemon", "api"}


def environment(service: str) -> dict:
    return COMPOSE["services"][service]["environment"]


def test_dagster_services_get_every_variable_the_instance_reads():
    needed = env_vars_in(INSTANCE)
    assert needed == {
        "DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PORT", "DAGSTER_POSTGRES_USER",
        "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB", "DAGSTER_MAX_CONCURRENT_RUNS",
    }  # fmt: skip
    for name in ("user_code", "webserver", "daemon"):
        assert needed <= set(environment(name)), name


def test_the_instance_config_is_valid_for_dagster(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    for name in env_vars_in(INSTANCE):
        monkeypatch.setenv(name, "5432" if name.endswith(("PORT", "RUNS")) else "x")
    config, _ = dagster_instance_config(str(ROOT / "deploy"), "dagster.yaml")
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_launcher"]["class"] == "DockerRunLauncher"


def test_runs_are_launched_in_containers_that_get_what_the_code_reads():
    launcher = INSTANCE["run_launcher"]["config"]
    # The launcher copies these from the launching process (daemon, or webserver) into each run.
    for service in ("webserver", "daemon"):
        assert set(launcher["env_vars"]) <= set(environment(service)), service
        assert "/var/run/docker.sock:/var/run/docker.sock" in COMPOSE["services"][service]["volumes"]
    settings_source = (ROOT / "recsys" / "settings.py").read_text()
    code_reads = set(re.findall(r'env.get\("(RECSYS_\w+)"\)', settings_source)) - {"RECSYS_RAW_URL", "RECSYS_LAKE_URL", "RECSYS_FEATURES_URL"}
    assert {"RECSYS_STORE", "RECSYS_MODEL_DIR", "RECSYS_EMBEDDING_BACKEND"} <= code_reads
    assert code_reads <= set(launcher["env_vars"])
    # Run containers mount the same named volumes, at the paths the environment points to.
    assert launcher["network"] == COMPOSE["networks"]["recsys-network"]["name"]
    for volume in launcher["container_kwargs"]["volumes"]:
        name, path = volume.split(":")[:2]
        assert COMPOSE["volumes"][name]["name"] == name
        assert volume in COMPOSE["services"]["user_code"]["volumes"]
    assert environment("user_code")["RECSYS_DATA_DIR"] == "/data" and environment("user_code")["RECSYS_MODEL_DIR"] == "/models"
    assert environment("user_code")["DAGSTER_CURRENT_IMAGE"] == COMPOSE["services"]["user_code"]["image"]
    for service in COMPOSE["services"].values():
        assert service["networks"] == ["recsys-network"]


def test_user_code_serves_the_module_the_workspace_names():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    importlib.import_module(module)
    command = COMPOSE["services"]["user_code"]["command"]
    assert command[command.index("-m") + 1] == module
    port = command[command.index("-p") + 1]
    docker_workspace = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
    server = docker_workspace["load_from"][0]["grpc_server"]
    assert (server["host"], str(server["port"])) == ("user_code", port)
    for name in ("webserver", "daemon"):
        assert "/opt/dagster/workspace.yaml" in COMPOSE["services"][name]["command"]


def test_stores_point_at_the_databases_postgres_creates():
    env = environment("user_code")
    assert env["RECSYS_STORE"].startswith("postgresql://") and env["RECSYS_STORE"].endswith("@postgres:5432/recsys")
    init = (ROOT / "sql" / "init" / "00-databases.sql").read_text()
    assert set(re.findall(r"CREATE DATABASE (\w+);", init)) == {"recsys_raw", "recsys_lake", "recsys_features"}
    assert "./sql/init:/docker-entrypoint-initdb.d:ro" in COMPOSE["services"]["postgres"]["volumes"]


def test_env_example_covers_the_variables_compose_reads():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{(\w+)(?::-[^}]*)?\}", compose_text))
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert used <= example, used - example


def test_the_api_service_serves_the_stores_and_models_the_pipeline_writes():
    from recsys.cli.main import build_parser

    api = COMPOSE["services"]["api"]
    assert api["image"] == COMPOSE["services"]["user_code"]["image"]
    command = api["command"]
    args = build_parser().parse_args(command[1:])  # the options exist and parse
    assert command[0] == "recsys" and args.command == "serve" and args.host == "0.0.0.0"
    assert f"{args.port}:{args.port}" in api["ports"]
    # --store is not given: it comes from RECSYS_STORE, the same stores the pipeline writes.
    assert "--store" not in command
    assert environment("api")["RECSYS_STORE"] == environment("user_code")["RECSYS_STORE"]
    models = environment("api")["RECSYS_MODEL_DIR"]
    assert f"recsys-models:{models}:ro" in api["volumes"] and f"recsys-models:{models}" in COMPOSE["services"]["user_code"]["volumes"]
    assert f"127.0.0.1:{args.port}/health" in " ".join(api["healthcheck"]["test"])
    assert "pgvector" in COMPOSE["services"]["postgres"]["image"]


def test_the_image_holds_every_package_the_project_ships():
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for package in [*packages, "sql"]:
        assert f"COPY {package} {package}" in dockerfile, package


def test_the_kubernetes_instance_differs_only_in_its_launcher_and_passes_what_the_code_reads():
    k8s = yaml.safe_load((ROOT / "deploy" / "dagster.k8s.yaml").read_text())
    assert {k: v for k, v in k8s.items() if k != "run_launcher"} == {k: v for k, v in INSTANCE.items() if k != "run_launcher"}
    launcher = k8s["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    docker_vars = set(INSTANCE["run_launcher"]["config"]["env_vars"])
    # What holds a password comes from a Secret; every other variable as in Docker.
    secret = {"RECSYS_STORE", "DAGSTER_POSTGRES_PASSWORD"}
    assert set(launcher["config"]["env_vars"]) == docker_vars - secret and launcher["config"]["env_secrets"]
    mounts = {m["mountPath"]: m["name"] for m in launcher["config"]["volume_mounts"]}
    assert mounts == {"/data": "recsys-data", "/models": "recsys-models"}
    assert {v["name"] for v in launcher["config"]["volumes"]} == set(mounts.values())
