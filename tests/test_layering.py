"""Imports flow one way: dsl <- compiler <- verifier <- cli. Only solve.py runs z3."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "dsl": {"dsl"},
    "compiler": {"dsl", "compiler"},
    "verifier": {"dsl", "compiler", "verifier"},
}


def imported_layers(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level:          # relative import stays in its own package
                continue
            parts = node.module.split(".")
            if parts[0] == "dpipolicy" and len(parts) > 1:
                yield parts[1], node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], alias.name


def test_layers_import_only_downwards():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in (ROOT / layer).rglob("*.py"):
            for imported, module in imported_layers(path):
                if imported in {"dsl", "compiler", "verifier", "cli", "api"} and imported not in allowed:
                    bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, bad


def test_only_solve_calls_the_solver():
    users = []
    for layer in ALLOWED:
        for path in (ROOT / layer).rglob("*.py"):
            if any(imported == "z3" for imported, _ in imported_layers(path)):
                users.append(path.name)
    assert users == ["solve.py"]
