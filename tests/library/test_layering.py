"""The architecture holds: the `recsys` library imports no Dagster, nothing reads the environment
when it is imported, and the HTTP service and the CLI's own commands start without Dagster."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

LIBRARY = ROOT / "recsys"
ORCHESTRATION = ("dagster", "recsys_assets", "recsys_resources", "recsys_api")
# The CLI is an entry point: its Dagster commands (load, replay, demo) import the Dagster layer
# when they run, which is what it is for.
ENTRY_POINTS = LIBRARY / "cli"


def library_modules() -> list[Path]:
    return sorted(p for p in LIBRARY.rglob("*.py") if ENTRY_POINTS not in p.parents)


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_library_module_imports_dagster_or_the_dagster_layer():
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in imported_modules(ast.parse(path.read_text())) if name.split(".")[0] in ORCHESTRATION)
        for path in library_modules()
    }
    assert {path: names for path, names in offenders.items() if names} == {}
    assert len(offenders) > 20  # the scan saw the library, not an empty folder


def module_level_environment_reads(tree: ast.Module) -> list[int]:
    """Lines that touch os.environ / os.getenv outside any function body (run at import)."""

    def reads(node: ast.AST) -> list[int]:
        return [
            n.lineno for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "os" and n.attr in ("environ", "getenv")
        ]  # fmt: skip

    lines = []
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(statement, ast.ClassDef):
            for inner in statement.body:
                if not isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines += reads(inner)
            continue
        lines += reads(statement)
    return lines


def test_nothing_reads_the_environment_when_imported():
    packages = [LIBRARY, ROOT / "recsys_assets", ROOT / "recsys_resources", ROOT / "recsys_api"]
    found = {
        str(path.relative_to(ROOT)): lines
        for package in packages
        for path in sorted(package.rglob("*.py"))
        if (lines := module_level_environment_reads(ast.parse(path.read_text())))
    }
    assert found == {}


def loads_dagster(statement: str) -> bool:
    code = f"import sys\n{statement}\nprint('dagster' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def test_the_http_service_and_the_cli_start_without_dagster():
    assert not loads_dagster("import recsys_api.app, recsys_api.snapshot, recsys.cli.main")
    assert not loads_dagster("from recsys.cli.main import build_parser; build_parser().parse_args(['serve'])")
    modules = ", ".join(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for path in library_modules()
    )
    assert not loads_dagster(f"import {modules}")
    # The check itself can fail: the Dagster layer does load Dagster.
    assert loads_dagster("import recsys_assets.definitions")
