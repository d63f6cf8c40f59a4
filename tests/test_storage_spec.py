"""The storage choices of a spec, without servers: what `storage` and `study` accept and refuse,
that a password never reaches what is written, and that `gansweep status`'s quick reading of
the frozen spec still refuses an edited one."""
from __future__ import annotations

import json

import pytest
import yaml

from gansweep.analysis.layout import META, SPEC, SPEC_SHA1, study_url
from gansweep.jobs import study
from gansweep.jobs import sweep_dir as sd
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.status import collect
from gansweep.trainers.errors import ConfigError
from tests.conftest import tiny_spec


@pytest.mark.parametrize("changes, fragment", [
    ({"storage": "s3://bucket/sweeps"}, "study: a sweep in s3://bucket/sweeps cannot keep"),
    ({"storage": "s3://bucket/sweeps?endpoint_override=localhost:9000&scheme=http",
      "study": "postgresql://u@h/db"}, "storage: "),
    ({"storage": "nosuchfs://bucket/sweeps", "study": "postgresql://u@h/db"}, "storage: "),
    ({"study": "mysql://u@h/db"}, "study: "),
    ({"study": "postgresql://u@h"}, "study: "),
    ({"study": 5}, "study: "),
])
def test_bad_storage_or_study_is_refused_naming_the_key(tmp_path, changes, fragment):
    with pytest.raises(ConfigError, match="^" + fragment.replace("?", r"\?")):
        parse_spec({**tiny_spec(tmp_path), **changes})


def test_password_is_used_but_never_in_the_frozen_spec(tmp_path):
    url = "postgresql://gs:hunter2-secret@db.example:5433/sweeps?sslmode=disable"
    spec = parse_spec(tiny_spec(tmp_path, study=url))
    assert spec.study == "postgresql://gs@db.example:5433/sweeps?sslmode=disable"
    assert "hunter2" not in yaml.safe_dump(spec.to_dict()) and "hunter2" not in repr(spec)
    assert study.redact(url) == "postgresql://gs:***@db.example:5433/sweeps?sslmode=disable"
    assert "hunter2" not in study.redact("postgresql://gs@db.example/x?password=hunter2")
    # handed to the driver when SQLAlchemy connects to that server as that user, only
    asked = {"host": "db.example", "port": 5433, "user": "gs", "dbname": "sweeps"}
    study._supply_password(None, None, [], asked)
    assert asked["password"] == "hunter2-secret"
    other = {"host": "db.example", "port": 5433, "user": "someone-else", "dbname": "sweeps"}
    study._supply_password(None, None, [], other)
    assert "password" not in other


def test_default_study_is_sqlite_in_the_directory_also_for_old_sweeps(tmp_path):
    spec = parse_spec(tiny_spec(tmp_path))
    meta = sd.create(spec)
    root = tmp_path / spec.name
    assert spec.study is None and "study_storage" not in meta  # as every older sweep.json
    assert study_url(root, meta) == f"sqlite:///{root / 'optuna.db'}"


def test_status_reads_the_frozen_spec_quickly_and_still_refuses_an_edit(tmp_path):
    spec = parse_spec(tiny_spec(tmp_path))
    sd.create(spec)
    root = tmp_path / spec.name
    assert collect(root)["configurations"] == 0
    raw = yaml.safe_load((root / SPEC).read_text())
    (root / SPEC).write_text(yaml.safe_dump({**raw, "max_concurrent": 1}))
    assert collect(root)["sweep"] == spec.name  # outside the fingerprint: allowed, as before
    (root / SPEC).write_text(yaml.safe_dump({**raw, "steps": 999}))
    with pytest.raises(ConfigError, match="edited after submission"):
        collect(root)
    meta = json.loads((root / META).read_text())
    (root / SPEC).write_text(yaml.safe_dump(raw, sort_keys=False))
    del meta[SPEC_SHA1]  # a sweep made before the digest was recorded
    (root / META).write_text(json.dumps(meta))
    assert collect(root)["sweep"] == spec.name
