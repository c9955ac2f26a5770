"""Cheap objective factories for the storage tests (importable by spawned worker processes)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


def cheap_objective(config, run):
    """Two floats per trial; each worker logs what it ran to ``run/ran-<pid>.jsonl``.

    With ``$DELTANAS_TEST_KILL_AT=N``, a worker kills itself (SIGKILL, no clean-up at all) when it
    starts its N-th trial, once (a marker file remembers it).
    """
    log = Path(run.path) / f"ran-{os.getpid()}.jsonl"
    kill_at = int(os.environ.get("DELTANAS_TEST_KILL_AT", "0"))
    marker = Path(run.path) / "killed-once"
    state = {"n": 0}

    def objective(trial):
        state["n"] += 1
        x = trial.suggest_float("x", 0.0, 1.0)
        k = trial.suggest_int("k", 0, 10**9)
        if kill_at and state["n"] == kill_at and not marker.exists():
            marker.write_text(json.dumps({"number": trial.number, "x": x, "k": k}))
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)  # let the workers interleave
        trial.set_user_attr("macs_per_frame", 1e6 * (1 + x))
        trial.set_user_attr("teacher_macs", 2e6)
        trial.set_user_attr("test_top1", x)
        with open(log, "a") as f:
            f.write(json.dumps({"number": trial.number, "x": x, "k": k}) + "\n")
        return x, 1e6 * (1 + x)

    return objective


def tiny_gate_objective(config, run):
    """The gates objective on the tiny teacher and synthetic clips of the search tests (``config.data`` sizes
    them: use ``tests.search._tiny.TINY_DATA``)."""
    from deltanas.sweep import GateObjective

    from tests.search._tiny import TinyTeacher, tiny_data

    return GateObjective(config, run, teacher=TinyTeacher(), data=tiny_data(config.data))
