"""The docs cannot drift from the CLI: every command README.md and docs/ show is checked.

- Every `gansweep ...` line in a shell code block is parsed by the real argparse parser, with
  its `[optional]` parts left out and put in; every inline `gansweep ...` span names a real
  subcommand and real flags (inline spans may hold placeholders such as `--trials N`).
- The cheap ones run for real: `--help` of the CLI and of each subcommand, `gansweep train` on
  vector data (steps cut a hundredfold), `gansweep eval` on a generated samples file.
- Those that need a sweep (status, report, resume, train --from) run, once per subcommand in
  their fullest documented form, against one tiny real sweep made by `gansweep submit` at the
  start of this module, with its path put in for the documented one.
- `gansweep submit SPEC` loads and validates SPEC; every YAML block that is a spec (or part of
  one) is validated by the spec parser.
- Every benchmark command names a script in benchmarks/ and only flags (and choices) that
  script's argparse declares.
- Relative links and their #anchors resolve, repository paths in backticks exist, and
  docs/spec.md names every spec key.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from gansweep.jobs.cli import parser
from tests.conftest import ROOT, run_cli, tiny_spec

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# docs/byo.md's specs name the example's package, as `pip install -e examples/lab-gan` makes
# it importable
sys.path.insert(0, str(ROOT / "examples" / "lab-gan"))
SHELL = {"", "bash", "sh", "shell", "console"}
VECTOR = {"ring8": 2, "grid25": 2, "gauss1d": 1}  # data cheap enough to train and score here
NEEDS_SWEEP = ("status", "report", "resume")
# Linked from these pages, written alongside them by others: checked once they exist.
PENDING: set[str] = set()
# Repository paths the docs name that are not (or no longer) in the tree, and why.
NOT_IN_TREE = {
    "benchmarks/results/gpu.json": "written by benchmarks/gpu_check.py on a GPU machine",
    "benchmarks/early_stop.py": "named as the script benchmarks/budget.py replaced",
}
TOP = ("jobs", "analysis", "trainers", "search_spaces", "tests", "benchmarks", "docs",
       "gansweep")


@dataclass(frozen=True)
class Cmd:
    file: Path
    line: int
    text: str
    argv: tuple[str, ...]      # the full form: [optional] parts put in
    bare: tuple[str, ...]      # [optional] parts left out
    kind: str                  # "gansweep" or "bench"

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}: {self.text}"


# --- extraction ---------------------------------------------------------------------------

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def blocks(path: Path) -> list[tuple[str, int, list[str]]]:
    """Fenced code blocks: (language, line of the first content line, lines)."""
    out, lines, i = [], path.read_text().split("\n"), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        body, start, i = [], i + 2, i + 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        out.append((lang.lower(), start, body))
        i += 1
    return out


def prose(path: Path) -> str:
    """The file with its fenced blocks blanked (line numbers kept)."""
    lines, inside, fence = path.read_text().split("\n"), False, ""
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m and (not inside or line.strip().startswith(fence)):
            inside, fence = not inside, m.group(2)
            lines[i] = ""
        elif inside:
            lines[i] = ""
    return "\n".join(lines)


def logical_lines(body: list[str], start: int) -> list[tuple[int, str]]:
    """Shell lines with `\\` continuations joined."""
    out, buf, first = [], "", None
    for n, line in enumerate(body, start):
        first = n if first is None else first
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((first, buf + line))
        buf, first = "", None
    return out


def tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def _is_python(tok: str) -> bool:
    return re.fullmatch(r"(.*/)?python[\d.]*", tok) is not None


def _script(tok: str) -> str | None:
    """benchmarks/X.py (or bare X.py where benchmarks/X.py exists)."""
    if tok.startswith("benchmarks/") and tok.endswith(".py"):
        return tok
    if re.fullmatch(r"\w+\.py", tok) and (ROOT / "benchmarks" / tok).is_file():
        return "benchmarks/" + tok
    return None


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    """The gansweep and benchmark commands on one shell line: (kind, arguments)."""
    toks, out, i = tokens(text), [], 0
    while i < len(toks):
        start = i == 0 or toks[i - 1] in ("&&", "||", "|", ";", "&", "--", "(")
        while start and i < len(toks) and re.fullmatch(r"[A-Za-z_]\w*=.*", toks[i]):
            i += 1  # environment assignments before a command
        if i >= len(toks):
            break
        kind, j = None, i
        if start and re.fullmatch(r"(.*/)?gansweep", toks[i]):
            kind, j = "gansweep", i + 1
        elif start and _is_python(toks[i]) and toks[i + 1:i + 3] == ["-m", "gansweep"]:
            kind, j = "gansweep", i + 3
        elif start and _is_python(toks[i]) and i + 1 < len(toks) and _script(toks[i + 1]):
            kind, j = "bench", i + 1
        elif start and _script(toks[i]) and i + 1 < len(toks):
            kind, j = "bench", i
        if kind:
            end = j
            while end < len(toks) and not re.fullmatch(r"[;&|<>()]+", toks[end]):
                end += 1
            args = toks[j:end]
            if kind == "bench":
                args[0] = _script(args[0])
            out.append((kind, args))
            i = end
        i += 1
    return out


OPTIONAL = re.compile(r"\[(-[^\[\]]*)\]")  # [--flag VALUE]: optional


def collect_fenced() -> list[Cmd]:
    out = []
    for path in DOCS:
        for lang, start, body in blocks(path):
            if lang not in SHELL:
                continue
            for line, text in logical_lines(body, start):
                full, bare = OPTIONAL.sub(r"\1", text), OPTIONAL.sub("", text)
                try:
                    pairs = zip(commands_in(full), commands_in(bare))
                except ValueError as exc:  # an unclosed quote: not valid shell
                    pytest.fail(f"{path.relative_to(ROOT)}:{line}: {exc}: {text}")
                for (kind, argv), (_, bare_argv) in pairs:
                    out.append(Cmd(path, line, text.strip(), tuple(argv), tuple(bare_argv),
                                   kind))
    return out


def collect_inline() -> list[Cmd]:
    """`gansweep ...` and benchmark commands in inline code spans (placeholders allowed)."""
    out = []
    for path in DOCS:
        text = prose(path)
        for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
            span = " ".join(m.group(1).split())
            line = text.count("\n", 0, m.start()) + 1
            try:
                found = commands_in(OPTIONAL.sub(r"\1", span))
            except ValueError:
                continue
            for kind, argv in found:
                if kind == "bench" or len(argv) >= 1:
                    out.append(Cmd(path, line, span, tuple(argv), tuple(argv), kind))
    return out


FENCED = collect_fenced()
INLINE = collect_inline()
GANSWEEP = [c for c in FENCED if c.kind == "gansweep"]
BENCH = [c for c in FENCED + INLINE if c.kind == "bench"]


def ids(cmds):
    return [f"{c.file.relative_to(ROOT)}:{c.line}" for c in cmds]


def test_the_docs_show_commands():
    assert len(GANSWEEP) >= 15 and len(BENCH) >= 20, (len(GANSWEEP), len(BENCH))
    assert {c.argv[0] for c in GANSWEEP if c.argv} >= {"train", "submit", "status", "resume",
                                                       "report", "rerun", "eval"}


# --- the parser ---------------------------------------------------------------------------

def parse(argv) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parser().parse_args(list(argv))
    except SystemExit as exc:
        if exc.code == 0 and "--help" in argv:
            return argparse.Namespace(command="help")
        raise AssertionError(err.getvalue().strip()) from None


@pytest.mark.parametrize("cmd", GANSWEEP, ids=ids(GANSWEEP))
def test_fenced_command_parses(cmd):
    for argv in {cmd.argv, cmd.bare}:
        try:
            parse(argv)
        except AssertionError as exc:
            pytest.fail(f"{cmd.where}\n  gansweep {' '.join(argv)}\n  {exc}")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_inline_commands_name_real_subcommands_and_flags():
    subs, bad = _subparsers(), []
    for cmd in (c for c in INLINE if c.kind == "gansweep"):
        if not cmd.argv or cmd.argv[0] in ("...", "--help"):
            continue
        sub = subs.get(cmd.argv[0])
        if sub is None:
            bad.append(f"{cmd.where}: no subcommand {cmd.argv[0]!r}")
            continue
        for tok in cmd.argv[1:]:
            if tok.startswith("--") and tok.split("=")[0] not in sub._option_string_actions:
                bad.append(f"{cmd.where}: gansweep {cmd.argv[0]} has no {tok}")
    assert not bad, "\n".join(bad)


# --- specs --------------------------------------------------------------------------------

def _spec_file(name: str) -> Path:
    path = Path(name)
    if not path.is_absolute():
        path = ROOT / path
    if not path.exists() and "jobs/specs/" in name:  # a checkout elsewhere (a cluster node)
        path = ROOT / ("jobs/specs/" + name.split("jobs/specs/", 1)[1])
    return path


SUBMITS = [c for c in GANSWEEP if c.argv[:1] == ("submit",)]


@pytest.mark.parametrize("cmd", SUBMITS, ids=ids(SUBMITS))
def test_submitted_spec_files_validate(cmd):
    from gansweep.jobs.spec import load_spec

    args = parse(cmd.argv)
    path = _spec_file(args.spec)
    assert path.is_file(), f"{cmd.where}: no spec file {args.spec}"
    load_spec(path, sets=args.set)  # with the overrides the command gives


def spec_blocks() -> list[tuple[str, dict]]:
    from gansweep.jobs.spec import KEYS

    out = []
    for path in DOCS:
        for lang, start, body in blocks(path):
            if lang not in ("yaml", "yml"):
                continue
            raw = yaml.safe_load("\n".join(body))
            if isinstance(raw, dict) and 2 * len(set(raw) & set(KEYS)) >= len(raw):
                out.append((f"{path.relative_to(ROOT)}:{start}", raw))
    return out


def test_spec_blocks_validate(tmp_path):
    from gansweep.jobs.spec import parse_spec
    from gansweep.trainers.errors import ConfigError

    found = spec_blocks()
    assert len(found) >= 3
    base = {"name": "docs", "trainer": "gan", "dataset": "ring8", "steps": 100, "trials": 2,
            "storage": str(tmp_path)}
    for where, raw in found:
        try:
            parse_spec(raw if {"name", "trainer"} <= set(raw) else {**base, **raw}, where)
        except ConfigError as exc:
            pytest.fail(f"{where}: {exc}")


def test_spec_reference_names_every_key():
    from gansweep.jobs.spec import KEYS

    text = (ROOT / "docs" / "spec.md").read_text()
    keys = [*KEYS, *(f"collapse.{k}" for k in ("threshold", "patience", "grace_steps",
                                               "trend", "revive")),
            "asha.grace_steps", "asha.reduction_factor", "penalty"]
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert not missing, f"docs/spec.md has no table row for {missing}"


# --- benchmark scripts --------------------------------------------------------------------

def _literal_names(tree: ast.Module) -> dict[str, list]:
    """Module-level NAME = {dict}/[list]/(tuple) literals: the keys or items."""
    out = {}
    for node in tree.body:
        target = (node.targets[0] if isinstance(node, ast.Assign) else
                  node.target if isinstance(node, ast.AnnAssign) else None)
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Dict):
            out[target.id] = [ast.literal_eval(k) for k in node.value.keys
                              if isinstance(k, ast.Constant)]
        elif isinstance(target, ast.Name) and isinstance(node.value, (ast.List, ast.Tuple)):
            with contextlib.suppress(ValueError):
                out[target.id] = list(ast.literal_eval(node.value))
    return out


def script_options(script: str) -> dict[str, list | None]:
    """Each option a script's argparse declares, with its choices where they are literal."""
    tree = ast.parse((ROOT / script).read_text())
    names, out = _literal_names(tree), {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            continue
        choices = None
        for kw in node.keywords:
            if kw.arg != "choices":
                continue
            v = kw.value
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.args:
                v = v.args[0]  # list(NAME), sorted(NAME)
            if isinstance(v, ast.Name):
                choices = names.get(v.id)
            else:
                with contextlib.suppress(ValueError):
                    choices = list(ast.literal_eval(v))
        for arg in node.args:
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("-"):
                out[arg.value] = choices
    return out


@pytest.mark.parametrize("cmd", BENCH, ids=ids(BENCH))
def test_benchmark_command_matches_its_script(cmd):
    script, *args = cmd.argv
    assert (ROOT / script).is_file(), f"{cmd.where}: no {script}"
    options = script_options(script)
    for i, tok in enumerate(args):
        if not tok.startswith("--"):
            continue
        name = tok.split("=")[0]
        assert name in options, f"{cmd.where}: {script} takes no {name} (it takes " \
                                f"{', '.join(sorted(options)) or 'no options'})"
        choices = options[name]
        placeholder = i + 1 < len(args) and re.fullmatch(r"[A-Z][A-Z0-9_]*", args[i + 1])
        if choices is not None and i + 1 < len(args) and "=" not in tok and not placeholder:
            assert args[i + 1] in choices, f"{cmd.where}: {name} {args[i + 1]!r} is not " \
                                           f"one of {choices}"


# --- links and paths ----------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", prose(path), re.M)}


def test_links_and_anchors_resolve():
    bad = []
    for path in DOCS:
        text = prose(path)
        for m in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
            line = text.count("\n", 0, m.start()) + 1
            if not dest.exists():
                if rel not in PENDING:
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {target} does not exist")
                continue
            if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{path.relative_to(ROOT)}:{line}: no heading #{anchor} in {rel}")
    assert not bad, "\n".join(bad)


def test_repository_paths_in_backticks_exist():
    bad = []
    for path in DOCS:
        text = prose(path)
        for m in re.finditer(r"`((?:%s)/[\w./-]*)`" % "|".join(TOP), text):
            name = m.group(1)
            if name in NOT_IN_TREE or re.search(r"[A-Z]{3,}", name):  # a placeholder
                continue
            if not (ROOT / name.rstrip("/")).exists():
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name} is not in the repository")
    assert not bad, "\n".join(bad)


# --- run them -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("docs")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    return {"GANSWEEP_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}


@pytest.fixture(scope="module")
def _sweep(work, cli_env):
    """The tiny sweep, started in the background by the first test that runs commands: the
    cheap runs go on while Ray starts."""
    spec = work / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(work / "sweeps", name="tiny-file", trials=4)))
    log = open(work / "submit.log", "w")
    # `submit --set` (docs/spec.md) makes it the sweep the commands expect: named tiny, two
    # configurations (a third is what the documented resume adds)
    proc = subprocess.Popen([sys.executable, "-m", "gansweep", "submit", str(spec), "--set",
                             "name=tiny", "--set", "trials=2"], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **cli_env},
                            stdout=log, stderr=subprocess.STDOUT)
    yield proc, work / "sweeps" / "tiny", work / "submit.log"
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def tiny_sweep(_sweep):
    proc, root, log = _sweep
    rc = proc.wait(timeout=300)
    assert rc == 0, f"the tiny sweep failed ({rc}):\n{log.read_text()}"
    assert yaml.safe_load((root / "spec.yaml").read_text())["trials"] == 2  # frozen with --set
    return root


def test_help_of_the_cli_and_every_subcommand(_sweep):
    for argv in [["--help"], *([name, "--help"] for name in _subparsers())]:
        proc = run_cli(*argv, timeout=60)
        assert proc.stdout.startswith("usage: gansweep"), (argv, proc.stdout)


def _value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _set(argv: list[str], flag: str, value: str) -> None:
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]


def parsed(cmd: Cmd) -> argparse.Namespace | None:
    """The command's arguments, or None where it does not parse (test_fenced_command_parses
    reports those)."""
    try:
        return parse(cmd.argv)
    except AssertionError:
        return None


def cheap_runs() -> list[tuple[Cmd, list[str]]]:
    """Help, single training runs on vector data and eval of vector samples, in doc order."""
    out = []
    for cmd in GANSWEEP:
        argv, ns = list(cmd.argv), parsed(cmd)
        if ns is None:
            continue
        if "--help" in argv:
            out.append((cmd, argv))
            continue
        if ns.command in ("train", "eval") and not getattr(ns, "from_sweep", None) \
                and ns.dataset in VECTOR:
            out.append((cmd, argv))
    return out


CHEAP = cheap_runs()


@pytest.mark.parametrize("cmd, argv", CHEAP, ids=ids([c for c, _ in CHEAP]))
def test_cheap_command_runs(cmd, argv, work, _sweep):
    base = work / "runs" / cmd.file.relative_to(ROOT).as_posix().replace("/", "_")
    base.mkdir(parents=True, exist_ok=True)
    ns = parse(argv)
    if getattr(ns, "command", None) == "train":
        steps = max(2, (ns.steps or 1000) // 100)  # a hundredth: order and resume kept
        _set(argv, "--steps", str(steps))
        for flag in ("--report-every", "--score-every"):
            if _value(argv, flag) is not None and int(_value(argv, flag)) > steps:
                _set(argv, flag, str(steps))
        _set(argv, "--out", str(base / ns.out.lstrip("/")))
    elif getattr(ns, "command", None) == "eval":
        samples = base / Path(ns.samples).name
        rng = np.random.default_rng(0)
        np.save(samples, rng.normal(size=(2500, VECTOR[ns.dataset])).astype(np.float32))
        argv[argv.index(ns.samples)] = str(samples)
    proc = run_cli(*argv, check=False, timeout=120)
    assert proc.returncode == 0, f"{cmd.where}\n  ran: gansweep {' '.join(argv)}\n" \
                                 f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    if getattr(ns, "command", None) == "eval" and ns.json:
        assert "mixture_score" in json.loads(proc.stdout)["metrics"] or ns.dataset == "gauss1d"
    if getattr(ns, "command", None) == "train":
        out = Path(_value(argv, "--out"))
        assert (out / "config.json").is_file() and (out / "checkpoint").is_dir()


def sweep_runs() -> list[Cmd]:
    """Per subcommand that needs a sweep, its fullest documented form on a local path."""
    chosen: dict[str, Cmd] = {}
    for cmd in GANSWEEP:
        ns = parsed(cmd)
        if ns is None or ns.command == "help":
            continue
        sub = "train --from" if getattr(ns, "from_sweep", None) else ns.command
        if sub not in (*NEEDS_SWEEP, "train --from"):
            continue
        dirs = getattr(ns, "sweep_dirs", None) or [getattr(ns, "sweep_dir", None)
                                                   or ns.from_sweep]
        if any("://" in d for d in dirs) or getattr(ns, "study", None) \
                or getattr(ns, "address", None):
            continue  # a bucket, a database or a cluster: parsed above, not run here
        flags = sum(t.startswith("--") for t in cmd.argv)
        if sub not in chosen or flags > sum(t.startswith("--") for t in chosen[sub].argv):
            chosen[sub] = cmd
    order = ("status", "train --from", "report", "resume")
    return [chosen[s] for s in order if s in chosen]


SWEEP_RUNS = sweep_runs()


def test_every_sweep_command_is_run():
    assert [c.argv[0] if c.argv[0] != "train" else "train --from" for c in SWEEP_RUNS] == \
        ["status", "train --from", "report", "resume"]


@pytest.mark.parametrize("cmd", SWEEP_RUNS, ids=ids(SWEEP_RUNS))
def test_sweep_command_runs_on_a_tiny_sweep(cmd, tiny_sweep, work):
    argv, ns = list(cmd.argv), parse(cmd.argv)
    dirs = getattr(ns, "sweep_dirs", None) or [getattr(ns, "sweep_dir", None) or ns.from_sweep]
    for i, d in enumerate(dirs):  # every sweep named becomes the tiny one (once)
        if i == 0:
            argv[argv.index(d)] = str(tiny_sweep)
        else:
            argv.remove(d)
    out = work / "sweep-runs" / re.sub(r"\W+", "-", cmd.text)[:60]
    if "--out" in argv:
        _set(argv, "--out", str(out))
    if ns.command == "resume" and ns.trials is not None:
        _set(argv, "--trials", "3")  # one configuration more than the tiny sweep's 2
    if ns.command == "train" and ns.steps is not None:
        _set(argv, "--steps", str(max(2, ns.steps // 100)))
    proc = run_cli(*argv, check=False, timeout=240)
    assert proc.returncode == 0, f"{cmd.where}\n  ran: gansweep {' '.join(argv)}\n" \
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    if ns.command == "status" and ns.json:
        s = json.loads(proc.stdout)
        assert s["ranking"] and s["trials"]  # what docs/operations.md says --json lists
    if ns.command == "report":
        assert {"index.html", "report.md", "trials.csv"} <= {p.name for p in out.iterdir()}
    if ns.command == "resume":
        assert "3 of 3 configurations" in proc.stdout + proc.stderr


def test_tensorboard_files_are_where_the_docs_say(tiny_sweep):
    # docs/operations.md: event files under SWEEP_DIR/tune/run-NNN/trial_*/
    assert list(tiny_sweep.glob("tune/run-*/trial_*/events.out.tfevents.*"))
