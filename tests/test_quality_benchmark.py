"""benchmarks/quality.py's searches are specs `gansweep submit` accepts, as written."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["ring8", "grid25", "digits-dcgan", "digits-wgan-gp"])
def test_every_search_is_a_valid_spec(name, tmp_path):
    from benchmarks.quality import SEARCHES, spec_for
    from gansweep.jobs.spec import parse_spec
    from gansweep.trainers.registry import get_trainer

    spec = parse_spec(spec_for(name, str(tmp_path)))
    known = set(get_trainer(spec.trainer).HPARAMS)
    assert set(SEARCHES[name]["space"]) | set(SEARCHES[name]["fixed"]) <= known
    assert spec.budget["hours"] <= 0.75 and spec.seeds["count"] == 3
