"""The same study through a real PostgreSQL server (``.ci/run`` starts one on loopback and sets
``DELTANAS_TEST_POSTGRES_URL``; without it this test is skipped)."""

from __future__ import annotations

import os
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from deltanas.cli import main
from deltanas.errors import DeltaNASError
from deltanas.sweep import open_storage, run_sweep

from ._doubles import cheap_objective
from .test_storage import CONFIG, check_nothing_lost

URL = os.environ.get("DELTANAS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="no PostgreSQL server: set DELTANAS_TEST_POSTGRES_URL (.ci/run does)")


def test_two_workers_share_a_postgres_study_and_resume_after_a_kill(tmp_path, monkeypatch):
    name = f"deltanas-test-{uuid.uuid4().hex[:10]}"
    storage = open_storage(URL, tmp_path)
    try:
        monkeypatch.setenv("DELTANAS_TEST_KILL_AT", "3")
        with pytest.raises(DeltaNASError, match="signal 9"):
            run_sweep(CONFIG, "pg", trials=8, workers=2, storage=URL, study_name=name, runs_dir=tmp_path,
                      sampler="random", progress=False, objective=cheap_objective)
        study = optuna.load_study(study_name=name, storage=storage)
        assert len(study.get_trials(states=(TrialState.RUNNING,))) == 1
        result = run_sweep(CONFIG, "pg", trials=8, workers=2, storage=URL, study_name=name, runs_dir=tmp_path,
                           sampler="random", progress=False, objective=cheap_objective)
        assert len(result.recovered) == 1
        study = optuna.load_study(study_name=name, storage=storage)
        check_nothing_lost(study, tmp_path / "pg", 8, None)
        assert study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING)) == []
        # the run folder remembers the storage without a password; the CLI reads the study back
        code = main(["pareto", str(tmp_path / "pg"), "--storage", URL, "--out", str(tmp_path / "p")])
        assert code == 0 and (tmp_path / "p" / "pareto.csv").is_file()
    finally:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
