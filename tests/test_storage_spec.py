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


@pytest.mark.parametrize("url", [
    "postgresql://gs:hunter2-secret@db.example:5433/sweeps?sslmode=disable",
    "postgresql://gs@db.example:5433/sweeps?password=hunter2-secret",
])
def test_a_study_url_with_a_password_is_refused_without_repeating_it(tmp_path, url):
    with pytest.raises(ConfigError, match="^study: .*PGPASSWORD.*pgpass") as err:
        parse_spec(tiny_spec(tmp_path, study=url))
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="^--study: ") as err:
        study.bare(url, "--study")
    assert "hunter2" not in str(err.value)


def test_a_study_url_without_password_is_kept_as_written(tmp_path):
    url = "postgresql://gs@db.example:5433/sweeps?sslmode=disable"
    spec = parse_spec(tiny_spec(tmp_path, study=url))
    assert spec.study == url and yaml.safe_load(yaml.safe_dump(spec.to_dict()))["study"] == url
    assert study.redact("postgresql://gs:hunter2@db.example/x") == "postgresql://gs:***@db.example/x"
    assert "hunter2" not in study.redact("postgresql://gs@db.example/x?password=hunter2")


@pytest.mark.parametrize("uri", [
    "s3://AKIAKEY:hunter2-secret@bucket/sweeps",
    "s3://AKIAKEY:hunter2/secret+x@bucket/sweeps",  # a raw secret key may hold '/'
    "gs://hunter2-secret@bucket/sweeps",
    "s3://bucket/sweeps?secret_key=hunter2-secret",
])
def test_storage_with_credentials_is_refused_without_repeating_them(tmp_path, uri):
    with pytest.raises(ConfigError, match="^storage: ") as err:
        parse_spec({**tiny_spec(tmp_path), "storage": uri, "study": "postgresql://u@h/db"})
    assert "hunter2" not in str(err.value)


def test_an_at_sign_in_a_bucket_path_is_not_taken_for_credentials(tmp_path):
    spec = parse_spec({**tiny_spec(tmp_path), "storage": "s3://bucket/team@lab/sweeps",
                       "study": "postgresql://u@h/db"})
    assert spec.storage == "s3://bucket/team@lab/sweeps"


def test_default_study_is_sqlite_in_the_directory_also_for_old_sweeps(tmp_path):
    spec = parse_spec(tiny_spec(tmp_path))
    meta, held = sd.create(spec)
    held.release()
    root = tmp_path / spec.name
    assert spec.study is None and "study_storage" not in meta.to_json()  # as older sweep.json
    assert study_url(root, meta) == f"sqlite:///{root / 'optuna.db'}"


def test_status_reads_the_frozen_spec_quickly_and_still_refuses_an_edit(tmp_path):
    spec = parse_spec(tiny_spec(tmp_path))
    sd.create(spec)[1].release()
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
