"""The spec's `tracking:` key: which experiment trackers every run is logged to.

    tracking: {mlflow: http://127.0.0.1:5000}
    tracking: {mlflow: {uri: http://mlflow.lab:5000, experiment: gan-study}}
    tracking: {wandb: {project: gan-study, mode: offline, entity: my-lab}}

Checked with every other key, before anything is made; the normal form (each tracker a
mapping, every default filled in) is what spec.yaml keeps. No secret belongs here: spec.yaml is
copied with the sweep and printed in messages, so credentials come from the environment the
trackers read themselves (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or
MLFLOW_TRACKING_TOKEN; WANDB_API_KEY or `wandb login`).
"""
from __future__ import annotations

import importlib.util
import re
from typing import Any

from gansweep.trainers.errors import ConfigError

TRACKERS = ("mlflow", "wandb")
MLFLOW_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "databricks")
WANDB_MODES = ("online", "offline")
EXAMPLE = "tracking: {mlflow: http://127.0.0.1:5000} or {wandb: {project: P, mode: offline}}"


def parse(value: Any, default_experiment: str) -> dict | None:
    """The normal form of `tracking:` (None: no tracker)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"tracking: write a mapping of trackers, e.g. {EXAMPLE}")
    unknown = sorted(set(value) - set(TRACKERS))
    if unknown:
        raise ConfigError(f"tracking: unknown tracker {', '.join(map(str, unknown))}; gansweep "
                          f"logs to {' and '.join(TRACKERS)}, e.g. {EXAMPLE}")
    out = {}
    if "mlflow" in value:
        out["mlflow"] = _mlflow(value["mlflow"], default_experiment)
    if "wandb" in value:
        out["wandb"] = _wandb(value["wandb"])
    return out


def _installed(tracker: str) -> None:
    # find_spec, not import: mlflow and wandb take seconds to import, and only the driver
    # that logs needs them
    if importlib.util.find_spec(tracker) is None:
        raise ConfigError(f"tracking.{tracker}: needs the {tracker} package; "
                          f"pip install 'gansweep[{tracker}]'")


def _mlflow(value: Any, default_experiment: str) -> dict:
    where = "tracking.mlflow"
    fix = ("write tracking: {mlflow: http://HOST:5000} or {mlflow: {uri: http://HOST:5000, "
           "experiment: NAME}}")
    if isinstance(value, str):
        value = {"uri": value}
    if not isinstance(value, dict) or set(value) - {"uri", "experiment"} or "uri" not in value:
        raise ConfigError(f"{where}: not valid; {fix}")
    uri, experiment = value["uri"], value.get("experiment", default_experiment)
    if not isinstance(uri, str) or not uri or not uri.isprintable():
        raise ConfigError(f"{where}: the tracking URI must be a string; {fix}")
    scheme, sep, rest = uri.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise ConfigError(f"{where}: give the tracking server's URI with its scheme "
                          f"({', '.join(s + '://' for s in MLFLOW_SCHEMES)}); {fix}")
    authority = rest.split("/", 1)[0]
    if "@" in authority or (re.match(r"[^/@:]*:", rest) and "@" in rest):
        # the URI is not repeated: the part before '@' is a secret
        raise ConfigError(f"{where}: a URI with credentials in it (a part before '@') is "
                          "refused: spec.yaml and every message would carry them. Drop that "
                          "part and give them in the environment, where MLflow reads them: "
                          "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                          "MLFLOW_TRACKING_TOKEN)")
    if scheme.split("+", 1)[0].lower() not in MLFLOW_SCHEMES:
        raise ConfigError(f"{where}: {scheme}:// is not a tracking URI MLflow opens; use "
                          f"{', '.join(s + '://' for s in MLFLOW_SCHEMES)}")
    if not isinstance(experiment, str) or not experiment or not experiment.isprintable():
        raise ConfigError(f"{where}.experiment: write the MLflow experiment's name (default: "
                          "the sweep's name)")
    _installed("mlflow")
    return {"uri": uri.rstrip("/"), "experiment": experiment}


def _wandb(value: Any) -> dict:
    where = "tracking.wandb"
    fix = "write tracking: {wandb: {project: P, mode: offline|online, entity: E}}"
    if not isinstance(value, dict) or set(value) - {"project", "mode", "entity"}:
        raise ConfigError(f"{where}: not valid; {fix} (entity optional; the API key comes "
                          "from WANDB_API_KEY or `wandb login`, never the spec)")
    project = value.get("project")
    if not isinstance(project, str) or not project or not re.fullmatch(r"[^/\\#?%:]+", project):
        raise ConfigError(f"{where}.project: write the W&B project's name (no / \\ # ? % :); "
                          f"{fix}")
    mode = value.get("mode")  # absent: W&B's own choice (WANDB_MODE, else online)
    if mode is not None and mode not in WANDB_MODES:
        raise ConfigError(f"{where}.mode: {mode!r} is not valid; use online or offline "
                          "(offline writes runs under WANDB_DIR for `wandb sync` later)")
    entity = value.get("entity")
    if entity is not None and (not isinstance(entity, str) or not entity.isprintable()
                               or not entity):
        raise ConfigError(f"{where}.entity: write the W&B user or team name, or leave it out")
    _installed("wandb")
    out = {"project": project}
    if mode:
        out["mode"] = mode
    if entity:
        out["entity"] = entity
    return out
