"""Where a study lives: a journal file in the run folder by default, or any Optuna storage URL.

Opening is checked at the boundary: an unreachable database, a missing driver or a malformed URL
becomes one :class:`StorageError` line, never a traceback.

Trials left RUNNING by a killed process are found here too (:func:`recover_stale_trials`): every
trial records its worker (host, pid, process start time) in ``user_attrs["worker"]``; a trial whose
worker ran on this host and is gone, or (with ``stale_after``) one running longer than that, is marked
FAIL and queued again with the same parameters (Optuna's retry callback, so the dashboard shows the
retry history). On a database, Optuna's own heartbeat does the same across machines.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import DeltaNASError

__all__ = ["StorageError", "open_storage", "describe_storage", "worker_identity", "recover_stale_trials",
           "JOURNAL_NAME", "MAX_RETRY"]

JOURNAL_NAME = "study.journal"
MAX_RETRY = 2  # a trial that kills its process more often than this is left failed
HEARTBEAT_S = 30  # database storages: heartbeat interval and grace period (seconds)
GRACE_S = 120

_Retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback


class StorageError(DeltaNASError):
    """A study storage cannot be opened or used (unreachable server, missing driver, bad URL)."""


def describe_storage(url: str) -> str:
    """The URL with any password masked (safe for logs, error lines and ``sweep.json``)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _journal(path: Path):
    from optuna.storages import JournalStorage

    try:
        from optuna.storages.journal import JournalFileBackend as backend
    except ImportError:  # optuna < 4.0
        from optuna.storages import JournalFileStorage as backend
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return JournalStorage(backend(str(path)))
    except OSError as exc:
        raise StorageError(f"journal file {path}: cannot open ({exc.strerror})") from None


def _postgres_driver(url: str) -> str:
    """A bare ``postgresql://`` means psycopg2 to SQLAlchemy < 2.1 but psycopg (3) from 2.1 on: take
    whichever is installed (``postgres://`` too, as many services write it)."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    for module, dialect in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return dialect + sep + rest
    return "postgresql+psycopg2" + sep + rest  # fails below with the advice to install it


def _rdb(url: str):
    from optuna.storages import RDBStorage

    shown = url
    url = _postgres_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith(("postgresql", "mysql")):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    kwargs: dict[str, Any] = dict(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental"
        retry = _Retry(max_retry=MAX_RETRY)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is "experimental"; the callback was renamed in 4.9
            try:
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_stale_trial_callback=retry, **kwargs)
            except TypeError:  # optuna < 4.9
                return RDBStorage(url, engine_kwargs=engine_kwargs, failed_trial_callback=retry, **kwargs)
    except ImportError as exc:
        driver = "psycopg2-binary (pip install 'deltanas[postgres]')" if url.startswith("postgres") else "its driver"
        cause = exc.__cause__ or exc
        raise StorageError(f"storage {describe_storage(shown)}: a database driver is missing: install {driver} "
                           f"({str(cause).splitlines()[0]})") from None
    except Exception as exc:  # sqlalchemy.exc.* (connection refused, bad URL, authentication ...)
        reason = _first_line(exc)
        raise StorageError(f"cannot open storage {describe_storage(shown)}: {reason}") from None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # sqlalchemy wraps the driver's error
    text = str(orig if orig is not None else exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # psycopg2 puts the useful part ("Connection refused", "password authentication failed") last
    useful = [ln for ln in lines if not ln.startswith(("(Background", "[SQL"))]
    return "; ".join(useful[:3]) or exc.__class__.__name__


def open_storage(storage: str | None, run_path: Path):
    """``None``: the journal file ``run_path/study.journal``; a path ending in ``.journal`` (or
    ``journal:PATH``): that journal file; anything else: an Optuna RDB URL (``sqlite:///x.db``,
    ``postgresql://user:pw@host:5432/db``, ``mysql+pymysql://...``)."""
    if storage is None:
        return _journal(Path(run_path) / JOURNAL_NAME)
    if storage.startswith("journal:"):
        return _journal(Path(storage[len("journal:"):]))
    if storage.endswith(".journal") and "://" not in storage:
        return _journal(Path(storage))
    if "://" not in storage:
        raise StorageError(f"storage {storage!r} is neither a journal file (*.journal) nor a URL like "
                           f"sqlite:///study.db or postgresql://user@host/db")
    return _rdb(storage)


# -- workers and stale trials ---------------------------------------------------------------------
def _process_start(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def worker_identity() -> dict[str, Any]:
    """What a trial records about the process that runs it (JSON, shown as a user attr)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _alive(worker: dict[str, Any]) -> bool | None:
    """True/False for a worker of this host; None when it ran elsewhere (cannot tell)."""
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return None
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = worker.get("start")
    return start is None or _process_start(pid) == start


def recover_stale_trials(study: optuna.Study, stale_after: float | None = None) -> list[int]:
    """Fail the RUNNING trials whose process is gone and queue each again (same parameters).

    Returns the numbers of the trials marked failed. A trial of another host is only judged by
    ``stale_after`` (seconds since it started); without it, it is left alone.
    """
    now = _dt.datetime.now()
    stale: list[FrozenTrial] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        alive = _alive(trial.user_attrs.get("worker"))
        old = (stale_after is not None and trial.datetime_start is not None
               and (now - trial.datetime_start).total_seconds() > stale_after)
        if alive is False or (alive is None and old):
            stale.append(trial)
    failed = []
    for trial in stale:
        try:
            frozen = study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another process got there first
        failed.append(trial.number)
        _queue_retry(study, frozen)
    return failed


def _queue_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's retry (same system attrs ``failed_trial``/``retry_history``), without the dead worker."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    system_attrs = {**trial.system_attrs, "failed_trial": history[0], "retry_history": history}
    study.add_trial(optuna.create_trial(state=TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, system_attrs=system_attrs))
