"""Imports point down only: jobs → search_spaces, analysis, trainers; analysis → trainers;
trainers imports neither; only jobs talks to Ray (README, "Layout"). Every layer is imported as
`gansweep.<layer>`: a bare `jobs` works only in this checkout, never where gansweep is installed."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("jobs", "analysis", "trainers", "search_spaces")
FORBIDDEN = {"trainers": {"analysis", "jobs", "search_spaces", "ray"},
             "analysis": {"jobs", "search_spaces", "ray"},
             "search_spaces": {"jobs", "analysis", "ray"}}


def modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def imported(path: Path) -> set[str]:
    """The layers (and ray) a file imports: `gansweep.jobs.x` counts as `jobs`."""
    parts = (m.split(".") for m in modules(path))
    return {p[1] if p[0] == "gansweep" and len(p) > 1 else p[0] for p in parts}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    wrong = {str(f.relative_to(ROOT)): sorted(imported(f) & FORBIDDEN[package]) for f in files}
    assert {f: w for f, w in wrong.items() if w} == {}


def test_nothing_imports_a_layer_outside_the_gansweep_namespace():
    files = [f for d in (*LAYERS, "gansweep", "tests", "benchmarks")
             for f in sorted((ROOT / d).rglob("*.py"))]
    bare = {str(f.relative_to(ROOT)): sorted(m for m in modules(f) if m.split(".")[0] in LAYERS)
            for f in files}
    assert {f: m for f, m in bare.items() if m} == {}
