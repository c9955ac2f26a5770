"""Studies shared by worker processes: nothing lost or duplicated, killed runs resume, bad storages
get one clear line. A cheap objective stands in for training here (the real one: test_objective.py)."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from deltanas.cli import main
from deltanas.errors import ConfigError, DeltaNASError
from deltanas.sweep import StorageError, SweepConfig, open_storage, recover_stale_trials, run_sweep
from deltanas.sweep._storage import worker_identity
from deltanas.training import DataConfig

from ._doubles import cheap_objective

CONFIG = SweepConfig(data=DataConfig(videos=("bikes",)))


def _ran(folder):
    """(number, params) of every trial the workers say they finished, from their own logs."""
    rows = []
    for log in sorted(folder.glob("ran-*.jsonl")):
        rows += [json.loads(line) for line in log.read_text().splitlines()]
    return rows


def check_nothing_lost(study, folder, trials: int, workers: int | None):
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == trials
    ran = _ran(folder)
    numbers = [r["number"] for r in ran]
    assert len(numbers) == len(set(numbers)) == trials  # each trial ran once...
    assert sorted(numbers) == sorted(t.number for t in complete)  # ...and is stored
    stored = {t.number: (t.params["x"], t.params["k"], t.values[0]) for t in complete}
    assert all(stored[r["number"]] == (r["x"], r["k"], r["x"]) for r in ran)
    assert len({(t.params["k"]) for t in complete}) == trials  # the workers drew different trials
    assert workers is None or len(list(folder.glob("ran-*.jsonl"))) == workers  # every process did work
    assert all(t.user_attrs["worker"]["pid"] > 0 for t in complete)


def test_two_workers_share_a_journal_study(tmp_path):
    result = run_sweep(CONFIG, "s", trials=10, workers=2, runs_dir=tmp_path, sampler="random", progress=False,
                       objective=cheap_objective)
    folder = tmp_path / "s"
    assert (folder / "study.journal").is_file() and (folder / "trials.csv").is_file()
    assert json.loads((folder / "sweep.json").read_text())["storage"] == "study.journal"
    study = optuna.load_study(study_name="s", storage=open_storage(None, folder))
    check_nothing_lost(study, folder, 10, 2)
    assert result.new_trials == 10
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]


def test_killed_sweep_resumes_without_losing_trials(tmp_path, monkeypatch):
    monkeypatch.setenv("DELTANAS_TEST_KILL_AT", "2")  # every worker would die at its 2nd trial, once in all
    with pytest.raises(DeltaNASError, match="signal 9.*run the same command again"):
        run_sweep(CONFIG, "k", trials=8, workers=2, runs_dir=tmp_path, sampler="random", progress=False,
                  objective=cheap_objective)
    folder = tmp_path / "k"
    killed = json.loads((folder / "killed-once").read_text())
    study = optuna.load_study(study_name="k", storage=open_storage(None, folder))
    before = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [killed["number"]] and len(before) >= 1

    result = run_sweep(CONFIG, "k", trials=8, workers=2, runs_dir=tmp_path, sampler="random", progress=False,
                       objective=cheap_objective)
    assert result.recovered == [killed["number"]]
    study = optuna.load_study(study_name="k", storage=open_storage(None, folder))
    complete = {t.number: t for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(complete) == 8
    assert all(complete[n].values == v for n, v in before.items())  # nothing lost or redone
    assert study.trials[killed["number"]].state == TrialState.FAIL
    retry = [t for t in complete.values() if t.system_attrs.get("failed_trial") == killed["number"]]
    assert len(retry) == 1 and retry[0].params == {"x": killed["x"], "k": killed["k"]}
    # a third run has nothing left to do
    again = run_sweep(CONFIG, "k", trials=8, workers=2, runs_dir=tmp_path, progress=False, objective=cheap_objective)
    assert again.new_trials == 0 and again.recovered == []


def test_a_study_refuses_other_settings(tmp_path):
    run_sweep(CONFIG, "c", trials=2, runs_dir=tmp_path, progress=False, objective=cheap_objective)
    with pytest.raises(ConfigError, match="metric differ"):
        run_sweep(CONFIG.replace(metric="fidelity"), "c", trials=3, runs_dir=tmp_path, progress=False,
                  objective=cheap_objective)
    with pytest.raises(ConfigError, match="keeps its study in study.journal"):
        run_sweep(CONFIG, "c", trials=3, runs_dir=tmp_path, storage=f"sqlite:///{tmp_path}/x.db", progress=False,
                  objective=cheap_objective)
    # a sqlite URL works like any database
    result = run_sweep(CONFIG, "d", trials=3, runs_dir=tmp_path, storage=f"sqlite:///{tmp_path}/x.db",
                       progress=False, objective=cheap_objective)
    assert len(result.completed) == 3


@pytest.mark.parametrize("storage, expected", [
    ("postgresql://nobody:secret@127.0.0.1:1/nothing", "cannot open storage postgresql://nobody:***@127.0.0.1:1"),
    ("nosuchdb://somewhere/x", "cannot open storage nosuchdb://somewhere/x"),
    ("not-a-url", "neither a journal file"),
])
def test_unreachable_storage_gets_one_clear_line(tmp_path, capsys, storage, expected):
    code = main(["sweep", "--storage", storage, "--name", "u", "--runs-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("deltanas sweep: error:") and expected in err[0]
    assert "secret" not in err[0]
    assert not (tmp_path / "u").exists()  # nothing written for a study that could not open
    with pytest.raises(StorageError):
        open_storage(storage, tmp_path)


def test_stale_trials_are_judged_by_their_worker(tmp_path):
    study = optuna.create_study(storage=open_storage(None, tmp_path), directions=["maximize", "minimize"])
    alive, elsewhere, unknown = (study.ask() for _ in range(3))
    for t in (alive, elsewhere, unknown):
        t.suggest_float("x", 0, 1)
    alive.set_user_attr("worker", worker_identity())  # this very process: alive
    elsewhere.set_user_attr("worker", {"host": "another-machine", "pid": 1, "start": None})
    assert recover_stale_trials(study) == []  # nothing provably dead
    assert recover_stale_trials(study, stale_after=0.0) == [elsewhere.number, unknown.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    retried = study.get_trials()[3:]
    assert [t.params for t in retried] == [elsewhere.params, unknown.params]
    assert retried[0].system_attrs["failed_trial"] == elsewhere.number
