"""``deltanas sweep``: an Optuna multi-objective study, in one or several processes, resumable.

The run folder ``runs/<name>/`` holds ``sweep.json`` (the study's name, where it is stored, its
config), the default journal ``study.journal``, one sub-run per trained trial under ``trials/`` and,
at the end, ``trials.csv`` (mode gates: also ``arch.json`` and ``best.json``, the best trial within the
budget, see ``GateObjective.finish``). The study itself is the state: running the same command again continues
it (finished trials are kept, trials of killed processes are failed and queued again), also from
another machine through a shared database (``--storage postgresql://...``).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .._run import RunDir, RunSummary
from ..errors import ConfigError, DeltaNASError
from ._config import SweepConfig
from ._objective import ObjectiveFactory, make_objective
from ._storage import (JOURNAL_NAME, StorageError, describe_storage, open_storage, recover_stale_trials,
                       worker_identity)

__all__ = ["SweepResult", "run_sweep", "open_sweep_study", "create_sampler", "study_directions", "DIRECTIONS"]

DIRECTIONS = ("maximize", "minimize")  # (agreement, MACs per frame)
SINGLE = ("maximize",)  # CMA-ES (mode gates): the agreement less a penalty above the budget
CONFIG_ATTR = "deltanas_sweep_config"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class SweepResult:
    study: optuna.Study
    run: RunDir
    new_trials: int
    recovered: list[int]
    best: dict | None = None  # mode gates: the best feasible trial (best.json), None without one

    @property
    def completed(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _require_cmaes() -> None:
    try:
        import cmaes  # noqa: F401  (Optuna's CmaEsSampler imports it lazily)
    except ImportError:
        raise ConfigError("--sampler cmaes needs the cmaes package: pip install 'deltanas[cmaes]'") from None


def create_sampler(name: str, seed: int | None, trials: int, *, constrained: bool = False
                   ) -> optuna.samplers.BaseSampler:
    """``tpe`` (multi-objective TPE: good with few trials), ``nsga2`` (a population of about a quarter
    of the trials, at least 4), ``random``, ``cmaes`` (single-objective CMA-ES; needs the ``cmaes``
    extra, else a ``ConfigError``). CMA-ES starts at the middle of each range in its own (log) scale:
    in mode gates, the calibrated profile.

    ``constrained``: the trials set a constraint (mode gates). Optuna >= 5.0 reads the one a trial sets
    itself (``Trial.set_constraint``); before it, tpe and nsga2 get ``constraints_func`` reading the user
    attr ``constraint``."""
    from ._gate_objective import trial_constraint

    legacy = {"constraints_func": trial_constraint} if constrained and not hasattr(optuna.Trial, "set_constraint") \
        else {}
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, trials // 3)), **legacy)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)), **legacy)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        _require_cmaes()
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {name!r}; choose from tpe, nsga2, random, cmaes")


def study_directions(config: SweepConfig, sampler: str) -> tuple[str, ...]:
    """(agreement up, MACs down); a single maximised score for ``cmaes`` (mode gates only)."""
    if sampler != "cmaes":
        return DIRECTIONS
    if config.mode != "gates":
        raise ConfigError("--sampler cmaes samples continuous parameters: use it with --mode gates")
    return SINGLE


def _normalised(data: Any) -> Any:
    return json.loads(json.dumps(data))


def open_sweep_study(config: SweepConfig, run: RunDir, storage: str | None, study_name: str,
                     sampler: optuna.samplers.BaseSampler | None = None, *, create: bool = True,
                     directions: Sequence[str] = DIRECTIONS) -> optuna.Study:
    """Open (or create, with ``directions``) the study and check it was made with the same config (and,
    when ``create``, the same directions)."""
    backend = open_storage(storage, run.path)
    try:
        if create:
            study = optuna.create_study(storage=backend, study_name=study_name, directions=list(directions),
                                        sampler=sampler, load_if_exists=True)
        else:
            study = optuna.load_study(study_name=study_name, storage=backend, sampler=sampler)
    except KeyError:
        raise StorageError(f"no study {study_name!r} in {describe_storage(storage or str(run.path / JOURNAL_NAME))}") \
            from None
    except ValueError as exc:  # e.g. an existing study with other directions
        raise ConfigError(f"study {study_name!r}: {exc}") from None
    except DeltaNASError:
        raise
    except Exception as exc:  # the database went away between opening and reading
        raise StorageError(f"study {study_name!r} on {describe_storage(storage or 'journal')}: "
                           f"{str(exc).splitlines()[0]}") from None
    if create and [d.name.lower() for d in study.directions] != list(directions):
        kind = "one score (--sampler cmaes)" if len(study.directions) == 1 else "two objectives (not cmaes)"
        raise ConfigError(f"study {study_name!r} was made with {kind}: use the same --sampler, or another "
                          f"--study/--name")
    wanted = _normalised(config.identity())
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        if create:
            study.set_user_attr(CONFIG_ATTR, wanted)
            names = ([f"val_{config.metric}", "macs_per_frame"] if len(directions) == 2
                     else [f"val_{config.metric}_penalised"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental in some optuna versions
                study.set_metric_names(names)
    elif stored != wanted:
        diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise ConfigError(f"study {study_name!r} was made with other settings ({', '.join(diff)} differ): "
                          f"use the same options, or another --study/--name")
    return study


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _shares(remaining: int, workers: int) -> list[int]:
    return [remaining // workers + (1 if i < remaining % workers else 0) for i in range(workers)]


def _report(worker: int, metric: str, progress: bool):
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if not progress:
            return
        macs = trial.user_attrs.get("macs_per_frame")
        cost = f"{macs / 1e6:.1f} MMACs/frame" if isinstance(macs, (int, float)) else ""
        if max(trial.user_attrs.get("constraint", (0.0,))) > 0:
            cost += " (over budget)"
        if trial.state == TrialState.COMPLETE:
            value = trial.user_attrs.get(f"val_{metric}", trial.values[0])
            line = f"validation {metric} {value:.3f}, {cost}"
        else:
            line = f"{trial.state.name.lower()} {cost}".strip()
        print(f"[worker {worker}] trial {trial.number}: {line}", flush=True)
    return callback


@dataclass(frozen=True)
class _Job:
    """What one worker process needs (picklable: plain data and an importable factory)."""

    config: dict
    run_path: str
    storage: str | None
    study_name: str
    n_trials: int
    worker: int
    seed: int
    sampler: str
    total: int  # the study's target size (sizes the sampler's start-up phase)
    threads: int | None
    factory: ObjectiveFactory
    progress: bool


def _work(job: _Job, objective=None) -> None:
    """One worker: open the storage itself, build the objective once (unless given), run ``n_trials``
    trials."""
    import torch

    from ..errors import TrainingError

    if job.threads:
        torch.set_num_threads(job.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from _report
    config = SweepConfig.from_dict(job.config)
    run = RunDir(Path(job.run_path))
    sampler = create_sampler(job.sampler, job.seed, job.total, constrained=config.mode == "gates")
    study = open_sweep_study(config, run, job.storage, job.study_name, sampler, create=False)
    objective = objective if objective is not None else job.factory(config, run)
    me = worker_identity()

    def tagged(trial: optuna.Trial):
        trial.set_user_attr("worker", me)  # lets a later run tell a dead worker's trial apart
        return objective(trial)

    # a trial that diverges or whose settings cannot work fails alone; the study goes on
    study.optimize(tagged, n_trials=job.n_trials, catch=(TrainingError, ConfigError),
                   callbacks=[_report(job.worker, config.metric, job.progress)], gc_after_trial=True)


def _child(job: _Job) -> None:  # a worker process: errors become one line and exit status 2
    try:
        _work(job)
    except DeltaNASError as exc:
        print(f"deltanas sweep: worker {job.worker}: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _prepare_run(config: SweepConfig, root: str | Path, name: str, storage: str | None, study_name: str) -> RunDir:
    run = RunDir(Path(root) / name)
    marker = run.path / "sweep.json"
    if run.path.exists() and any(run.path.iterdir()) and not marker.is_file():
        raise ConfigError(f"{run.path} exists and is not a sweep folder: choose another --name")
    if marker.is_file():
        old = json.loads(marker.read_text())
        if old.get("study") != study_name:
            raise ConfigError(f"{run.path} belongs to study {old.get('study')!r}, not {study_name!r}")
        where = describe_storage(storage) if storage else JOURNAL_NAME
        if old.get("storage") != where:
            raise ConfigError(f"{run.path} keeps its study in {old.get('storage')}, not {where}: "
                              f"pass the same --storage, or another --name")
    return run


def _write_marker(run: RunDir, config: SweepConfig, storage: str | None, study_name: str) -> None:
    run.write_json(run.path / "sweep.json", {
        "study": study_name, "storage": describe_storage(storage) if storage else JOURNAL_NAME,
        "mode": config.mode, "metric": config.metric, "config": config.to_dict()})


def run_sweep(config: SweepConfig, name: str, *, trials: int = 20, workers: int = 1, storage: str | None = None,
              study_name: str | None = None, runs_dir: str | Path = "runs", sampler: str = "tpe",
              threads: int | None = None, stale_after: float | None = None, progress: bool = True,
              objective: ObjectiveFactory = make_objective) -> SweepResult:
    """Run the study until it holds ``trials`` finished (complete or pruned) trials.

    ``workers`` > 1 starts that many processes, each opening the storage itself and running its
    share of the missing trials. ``objective`` builds a worker's objective from (config, run); it
    must be importable by name (worker processes are spawned).
    """
    if trials < 1 or workers < 1:
        raise ConfigError("--trials and --workers must be >= 1")
    config.check()
    directions = study_directions(config, sampler)
    create_sampler(sampler, None, trials)  # an unknown sampler or a missing package, refused before anything
    study_name = study_name or name
    run = _prepare_run(config, runs_dir, name, storage, study_name)
    # mode gates: the objective is built here (a budget it cannot reach is refused before anything is
    # written) and calibrates the study once, before any worker starts
    prepared = objective(config, run) if config.mode == "gates" else None
    study = open_sweep_study(config, run, storage, study_name, directions=directions)  # refused here: nothing written yet
    run.path.mkdir(parents=True, exist_ok=True)
    _write_marker(run, config, storage, study_name)
    calibration = prepared.prepare(study) if hasattr(prepared, "prepare") else None
    if calibration:
        stages = " ".join(f"{s}={t:.3g}" for s, t in calibration["stage_t0"].items())
        run.log(f"calibrated {calibration['gate']} gate, profile {calibration['profile']:g}: T0 = "
                f"{calibration['T0']:.4g} on {calibration['groups']} validation groups in "
                f"{calibration['seconds']:.1f}s ({calibration['calibrated_macs_per_frame'] / 1e6:.1f}M MACs/frame, "
                f"budget {calibration['target_macs_per_frame'] / 1e6:.1f}M); stage thresholds {stages}: trial "
                f"{len(study.get_trials(deepcopy=False)) - 1} (enqueued)")
    recovered = recover_stale_trials(study, stale_after)
    if recovered:
        run.log(f"trials {recovered} were left running by a process that is gone: failed and queued again")
    before = _finished(study)
    remaining = max(0, trials - before)
    run.log(f"sweep {config.mode} study {study_name!r}: {before} finished trials, {remaining} to run "
            f"with {workers} worker(s)")
    shares = _shares(remaining, min(workers, max(1, remaining)))
    base_seed = config.seed * 1000 + len(study.get_trials(deepcopy=False))  # a resumed run draws afresh
    jobs = [_Job(config.to_dict(), str(run.path), storage, study_name, share, i, base_seed + i, sampler, trials,
                 threads, objective, progress) for i, share in enumerate(shares) if share > 0]
    if len(jobs) == 1:
        _work(jobs[0], prepared)
    elif jobs:
        _spawn(jobs)
    study = open_sweep_study(config, run, storage, study_name, create=False)
    _write_trials_csv(study, run)
    best = prepared.finish(study, run) if hasattr(prepared, "finish") else None
    _write_summary(study, run, config, best)
    new = _finished(study) - before
    run.log(f"sweep done: {_finished(study)} finished trials ({new} new)")
    return SweepResult(study, run, new, recovered, best)


def _spawn(jobs: list[_Job]) -> None:
    ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state, same on every OS
    procs = []
    for job in jobs:
        if not job.threads:  # share the cores
            job = replace(job, threads=max(1, (multiprocessing.cpu_count() or 1) // len(jobs)))
        p = ctx.Process(target=_child, args=(job,), name=f"deltanas-sweep-{job.worker}")
        p.start()
        procs.append(p)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if bad:
        what = ", ".join(f"{n} exited with {c if c >= 0 else 'signal ' + str(-c)}" for n, c in bad)
        raise DeltaNASError(f"{what}; finished trials are kept: run the same command again to continue")


def _write_summary(study: optuna.Study, run: RunDir, config: SweepConfig, best: dict | None = None) -> None:
    """``summary.json``; in mode gates with ``best`` (``best.json``) also that trial's MACs and test figures."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    teacher_macs = next((t.user_attrs["teacher_macs"] for t in complete if "teacher_macs" in t.user_attrs), None)
    extra = {"study": study.study_name, "mode": config.mode, "metric": config.metric, "trials": _finished(study),
             "complete": len(complete)}
    if config.mode != "gates":
        run.write_summary(RunSummary("sweep", config.teacher, config.data.keyframe_interval, teacher_macs,
                                     extra=extra))
        return
    from ._gate_objective import CALIBRATION_ATTR

    calibration = study.user_attrs.get(CALIBRATION_ATTR, {})
    seconds = calibration.get("seconds", 0.0) + sum(t.user_attrs.get("seconds", 0.0) for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))
    extra.update({"target": config.target, "T0": calibration.get("T0"), "compute_seconds": round(seconds, 1),
                  "best": None if best is None else {k: best[k] for k in ("trial", "thresholds", "val")}})
    run.write_summary(RunSummary(
        "sweep", config.teacher, config.data.keyframe_interval, teacher_macs,
        macs_per_frame=None if best is None else best["macs_per_frame"],
        test_macs_per_frame=None if best is None else best["test_macs_per_frame"],
        test=None if best is None else best["test"], extra=extra))


def _write_trials_csv(study: optuna.Study, run: RunDir) -> None:
    from .._io import atomic_write

    try:
        frame = study.trials_dataframe(attrs=("number", "values", "params", "user_attrs", "state", "duration"))
    except Exception:  # nothing to tabulate yet
        return
    if len(frame):
        atomic_write(run.path / "trials.csv", lambda tmp: frame.to_csv(tmp, index=False))
