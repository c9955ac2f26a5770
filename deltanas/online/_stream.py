"""An online stream: the sparse engine, a check at every key frame, the controller, optional student
training, and the accounting of every frame."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from .._io import atomic_write_csv, atomic_write_text
from ..delta import DeltaModel, relative_change
from ..engine import SparseEngine
from ..errors import ConfigError
from ._controller import Check, Controller, OnlineConfig
from ._training import OnlineTrainer

__all__ = ["OnlineReport", "run_online", "window_fidelity"]

@dataclass
class OnlineReport:
    """Per frame (``rows``) and in all: what the stream cost, key frames, checks and training included.

    A row: ``frame``, ``key`` (1 on a key frame), ``dense`` (1 where the teacher alone ran: a key frame that
    keeps no state for delta frames), ``probe`` (1 on a probe's delta frames: the teacher gave the output, the
    delta frame ran beside it for the check), ``cut`` (a key frame forced by a scene cut), ``check_err``
    and ``check_change`` (the check's squared logit error and the teacher's squared change since the last
    key frame, on key frames that checked), ``interval`` and ``gate_scale`` in force, ``event`` (what the
    controller did), ``macs``, ``ms``, ``train_steps``; with ``evaluate``, also ``top1_agree``, ``sq_err`` and
    ``sq_teacher_change`` against the teacher run on every frame (not counted in the cost).
    """

    config: OnlineConfig
    input_hw: tuple[int, int]
    teacher_macs: float
    path: str
    rows: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.rows)

    @property
    def key_frames(self) -> int:
        return sum(r["key"] for r in self.rows)

    @property
    def ms_per_frame(self) -> float:
        return sum(r["ms"] for r in self.rows) / max(self.frames, 1)

    @property
    def macs_per_frame(self) -> float:
        return sum(r["macs"] for r in self.rows) / max(self.frames, 1)

    @property
    def evaluated(self) -> bool:
        return bool(self.rows) and "sq_err" in self.rows[0]

    def windows(self, size: int = 64) -> list[float]:
        """Fidelity pooled over consecutive windows of ``size`` frames (needs ``evaluate``): see
        :func:`window_fidelity`."""
        return window_fidelity(self.rows, size)

    def summary(self) -> dict:
        data = {"frames": self.frames, "key_frames": self.key_frames,
                "dense_frames": sum(r["dense"] for r in self.rows), "cuts": sum(r["cut"] for r in self.rows),
                "probe_frames": sum(r["probe"] for r in self.rows),
                "checks": sum(r["check_err"] != "" for r in self.rows),
                "fallbacks": sum(r["event"] == "fallback" for r in self.rows),
                "ms_per_frame": self.ms_per_frame, "macs_per_frame": self.macs_per_frame,
                "teacher_macs": self.teacher_macs, "macs_ratio": self.teacher_macs / max(self.macs_per_frame, 1.0),
                "train_steps": sum(r["train_steps"] for r in self.rows),
                "target": {self.config.metric: self.config.target}, "input_hw": list(self.input_hw),
                "path": self.path}
        if self.evaluated:
            wins = [w for w in self.windows() if w == w]
            data.update({
                "fidelity": window_fidelity(self.rows, self.frames)[0],  # the whole stream as one window
                "top1": sum(r["top1_agree"] for r in self.rows) / self.frames,
                "windows_64": len(wins),
                "windows_64_on_target": (sum(w >= self.config.target for w in wins) / len(wins) if wins
                                         else float("nan")) if self.config.metric == "fidelity" else None,
            })
        return data

    def lines(self) -> list[str]:
        s = self.summary()
        text = [f"{s['frames']} frames, {s['key_frames']} key frames ({s['cuts']} at scene cuts, {s['dense_frames']} of "
                f"the teacher alone), {s['checks']} checks, "
                f"{s['fallbacks']} fallbacks; {s['ms_per_frame']:.2f} ms and {s['macs_per_frame'] / 1e6:.1f} MMACs "
                f"per frame ({s['macs_ratio']:.2f}x fewer than the teacher), key frames, checks"
                + (" and training" if s["train_steps"] else "") + " included; " + self.path]
        if self.evaluated:
            on = s["windows_64_on_target"]
            text.append(f"against the teacher on every frame: fidelity {s['fidelity']:.3f}, top-1 {100 * s['top1']:.1f}%"
                        + (f"; {100 * on:.0f}% of {s['windows_64']} 64-frame windows at fidelity >= "
                           f"{self.config.target:g}" if on is not None else ""))
        return text

    def write(self, folder: "str | Path") -> list[Path]:
        """``frames.csv``, ``summary.json``, ``log.txt`` and the plot ``online.png`` / ``.svg`` in ``folder``."""
        from ..analysis.plots import plot_online

        folder = Path(folder)
        paths = [self.write_csv(folder / "frames.csv"),
                 atomic_write_text(folder / "summary.json", json.dumps(self.summary(), indent=2) + "\n"),
                 atomic_write_text(folder / "log.txt", "".join(line + "\n" for line in self.log))]
        return paths + plot_online(self.rows, self.config.target if self.config.metric == "fidelity" else None,
                                   folder / "online")

    def write_csv(self, path: "str | Path") -> Path:
        return atomic_write_csv(path, [{k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()}
                                       for r in self.rows])


def window_fidelity(rows: list[dict], size: int = 64) -> list[float]:
    """``1 - sum(sq_err) / sum(sq_teacher_change)`` over consecutive windows of ``size`` rows (a shorter last
    window is left out). A window of the teacher's outputs only (key frames, probes) is 1; any other window
    where the teacher's output did not change: NaN."""
    out = []
    for start in range(0, len(rows) - size + 1, size):
        part = rows[start:start + size]
        change = sum(float(r["sq_teacher_change"]) for r in part)
        err = sum(float(r["sq_err"]) for r in part)
        if change > 0:
            out.append(1 - err / change)
        else:
            out.append(1.0 if all(_exact(r) for r in part) else float("nan"))
    return out


def _exact(row: dict) -> bool:
    """Whether the row's output is the teacher's (a key frame or a probe's frame)."""
    return bool(int(row["key"]) or int(row.get("probe", 0)))


def _sq(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).sum())


@torch.no_grad()
def run_online(model: DeltaModel, frames: Iterable[torch.Tensor], config: OnlineConfig, *,
               engine: SparseEngine | None = None, evaluate: "bool | torch.Tensor" = False,
               trainer: OnlineTrainer | None = None, checks: bool = True, progress: bool = False) -> OnlineReport:
    """Stream ``frames`` (each (3, H, W) float in [0, 1], as a live source delivers them) through ``model`` on
    the sparse engine, key frames where the controller puts them (and at scene cuts).

    On each key frame after the first, the engine first runs it as a delta frame (the check), then the
    teacher; the controller sets the next interval and gate scale from the check. The stream starts with an
    exact probe (see :class:`Controller`), as does each scene cut. Where delta groups cost more than the
    teacher alone, the teacher alone runs (no checks) until the controller probes again.
    ``trainer`` takes its optimiser steps on the previous key frame and this one. ``evaluate`` also runs the
    teacher (PyTorch) on every frame for the agreement columns, outside the clock and the cost (or takes the
    teacher's logits per frame, (T, classes), computed beforehand). ``checks=False`` is the fixed schedule
    of ``config``'s start interval and scale 1 with scene cuts, as an offline-calibrated baseline runs: no
    checks, nothing adapts. The engine is built and warmed up on the first frame before the clock runs.
    """
    from tqdm import tqdm

    run: _OnlineRun | None = None
    with tqdm(desc="online", unit="frame", disable=not progress) as bar:
        for index, frame in enumerate(frames):
            x = (frame[None] if frame.ndim == 3 else frame).float()
            if run is None:
                run = _OnlineRun(model, engine or SparseEngine(model), config, x, trainer, checks)
            run.frame(index, x)
            if evaluate is not False:
                run.evaluate(index, x, evaluate if isinstance(evaluate, torch.Tensor) else None)
            bar.update()
    if run is None:
        raise ConfigError("the stream held no frames")
    return run.report


class _OnlineRun:
    """The state of one online stream between frames."""

    def __init__(self, model: DeltaModel, engine: SparseEngine, config: OnlineConfig, first: torch.Tensor,
                 trainer: OnlineTrainer | None, checks: bool) -> None:
        self.model, self.engine, self.config, self.trainer, self.checks = model, engine, config, trainer, checks
        self.teacher = model.teacher
        hw = (int(first.shape[-2]), int(first.shape[-1]))
        self.controller = Controller(config, scalable=engine.scaled_gates(hw) > 0, checks=checks)
        self.report = OnlineReport(config, hw, float(model.cost(hw).teacher_macs), "")
        if not self.controller.scalable:
            self.report.log.append("the model has no running a/w gates: only the interval adapts")
        engine.key_frame(first)  # builds and warms up every path outside the clock
        engine.delta_frame(first)
        self.dense_cost = self.report.teacher_macs
        if config.cost == "ms":
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                engine.dense_frame(first)
                times.append(1e3 * (time.perf_counter() - t0))
            self.dense_cost = sorted(times)[1]
        engine.reset()
        self.report.path = f"engine ({engine.backend}, key frames in {engine.key_runtime})"
        engine.set_gate_scale(self.controller.scale)
        self.prev = self.key_x = self.key_logits = self.key_ref = None
        self.since_key = 0
        self.group_cost: list[float] = []
        self.outputs: tuple[torch.Tensor, ...] = ()
        self.logits: torch.Tensor | None = None

    def frame(self, index: int, x: torch.Tensor) -> None:
        c, controller = self.config, self.controller
        cut = self.prev is not None and float(relative_change(x, self.prev)) > c.cut_threshold
        row = {"frame": index, "key": 0, "dense": 0, "probe": 0, "cut": int(cut), "check_err": "",
               "check_change": "", "interval": controller.interval, "gate_scale": controller.scale, "event": "",
               "macs": 0.0, "ms": 0.0, "train_steps": 0}
        start = time.perf_counter()
        if controller.dense:
            self._dense(row, x, cut)
        elif self.key_x is None or cut or self.since_key >= controller.interval:
            self._key(row, x, cut)
        else:
            self.outputs = self.engine.delta_frame(x)
            row["macs"] = self.engine.last_frame_macs()
            self.group_cost.append(1e3 * (time.perf_counter() - start) if c.cost == "ms" else row["macs"])
            if controller.probing:  # the teacher gives the output; the delta frame ran for the check alone
                self.outputs = self.engine.dense_frame(x, keep_reference=True)
                row.update(probe=1, macs=row["macs"] + self.report.teacher_macs)
            if self.checks:
                self._apply(row, controller.delta_costs(self.group_cost, self.dense_cost))
        row["ms"] = 1e3 * (time.perf_counter() - start)
        self.since_key += 1
        self.prev = x
        self.report.rows.append(row)

    def _dense(self, row: dict, x: torch.Tensor, cut: bool) -> None:
        t0 = time.perf_counter()
        self.outputs = self.engine.dense_frame(x)
        if self.config.cost == "ms":  # follows the machine's load
            self.dense_cost = 0.8 * self.dense_cost + 0.2 * 1e3 * (time.perf_counter() - t0)
        self.logits = self.teacher.logits_from_features(self.outputs[0])
        row.update(key=1, dense=1, macs=self.report.teacher_macs)
        self.key_x = None  # no state for delta frames: the next group starts with a key frame
        self._apply(row, self.controller.dense_frame(cut))

    def _key(self, row: dict, x: torch.Tensor, cut: bool) -> None:
        engine, c = self.engine, self.config
        check_logits = check_macs = None
        if self.key_x is not None and not cut and self.checks:
            check_start = time.perf_counter()
            check_logits = self.teacher.logits_from_features(engine.delta_frame(x)[0])
            check_macs = engine.last_frame_macs()
            # the check is a delta frame of the group too
            self.group_cost.append(1e3 * (time.perf_counter() - check_start) if c.cost == "ms" else check_macs)
        key_start = time.perf_counter()
        self.outputs = engine.key_frame(x)
        key_ms = 1e3 * (time.perf_counter() - key_start)
        self.logits = logits = self.teacher.logits_from_features(self.outputs[0])
        row.update(key=1, macs=self.report.teacher_macs + (check_macs or 0.0))
        decision = None
        if check_logits is not None:
            check = Check(_sq(check_logits, logits), _sq(logits, self.key_logits),
                          bool(check_logits.argmax() == logits.argmax()),
                          sum(self.group_cost) / max(len(self.group_cost), 1),
                          key_ms if c.cost == "ms" else self.report.teacher_macs, self.dense_cost)
            decision = self.controller.decide(check)
            row.update(check_err=check.sq_err, check_change=check.sq_change)
        elif cut:
            decision = self.controller.cut()
        if self.trainer is not None and check_logits is not None:
            steps, train_macs = self.trainer.step(self.key_x, x)
            row.update(train_steps=steps, macs=row["macs"] + train_macs)
        self._apply(row, decision)
        self.key_x, self.key_logits, self.since_key, self.group_cost = x, logits, 0, []

    def _apply(self, row: dict, decision) -> None:
        if decision is None:
            return
        row["event"] = decision.event
        self.engine.set_gate_scale(decision.scale)
        if decision.event != "hold":
            self.report.log.append(f"frame {row['frame']}: {decision.event} -> interval {decision.interval}, gate scale "
                                   f"{decision.scale:g}" + (f" ({decision.reason})" if decision.reason else ""))

    def evaluate(self, index: int, x: torch.Tensor, given: torch.Tensor | None) -> None:
        """The agreement columns of the last row against the teacher (not counted in the cost)."""
        row = self.report.rows[-1]
        teacher = self.teacher
        ref = given[index:index + 1] if given is not None else \
            teacher.logits_from_features(self.model.teacher_forward(x))
        out = self.logits if row["key"] else teacher.logits_from_features(self.outputs[0])
        exact = row["key"] or row["probe"]  # the teacher's output: no change to count, as on a key frame
        row.update(top1_agree=int(out.argmax() == ref.argmax()), sq_err=_sq(out, ref),
                   sq_teacher_change=0.0 if exact else _sq(ref, self.key_ref))
        if row["key"]:
            self.key_ref = ref
