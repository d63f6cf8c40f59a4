"""Imports point down only: jobs → search_spaces, analysis, trainers; analysis → trainers;
trainers imports neither; only jobs talks to Ray (README, "Layout")."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"trainers": {"analysis", "jobs", "search_spaces", "ray"},
             "analysis": {"jobs", "search_spaces", "ray"},
             "search_spaces": {"jobs", "analysis", "ray"}}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    wrong = {str(f.relative_to(ROOT)): sorted(imported(f) & FORBIDDEN[package]) for f in files}
    assert {f: w for f, w in wrong.items() if w} == {}
