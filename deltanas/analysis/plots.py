"""Drawing only (matplotlib, headless): the data comes from the analysis functions."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .._io import atomic_write  # noqa: E402

__all__ = ["plot_arch_choice", "plot_online", "save_figure", "op_family"]

_FAMILY_COLOURS = {"full": "#444444", "zero": "#d9d9d9", "lowrank": "#1f77b4", "channel": "#2ca02c",
                   "depthwise": "#9467bd", "subsample": "#ff7f0e", "gated": "#d62728"}


def op_family(spec: str) -> str:
    return spec.split(":")[0].split("(")[0]


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically."""
    paths = []
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        atomic_write(path, lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight"))
        paths.append(path)
    plt.close(fig)
    return paths


def plot_arch_choice(rows: Sequence[dict], stem: Path) -> list[Path]:
    """One bar per layer: the teacher's MACs (outline) and the chosen student's (filled, by family)."""
    names = [r["layer"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, max(4, 0.22 * len(rows))))
    y = range(len(rows))
    ax.barh(y, [r["teacher_macs"] / 1e6 for r in rows], color="none", edgecolor="#999999", label="teacher")
    seen = set()
    for i, r in enumerate(rows):
        family = op_family(r["op"])
        ax.barh(i, r["macs"] / 1e6, color=_FAMILY_COLOURS.get(family, "#8c564b"),
                label=family if family not in seen else None)
        seen.add(family)
        ax.text(r["teacher_macs"] / 1e6, i, f" {r['op']}", va="center", fontsize=6)
    ax.set_yticks(list(y), names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("MMACs per delta frame")
    ax.set_title("chosen student per layer")
    ax.legend(loc="lower right", fontsize=7)
    return save_figure(fig, Path(stem))


def plot_learned_gates(rows: Sequence[dict], labels: Sequence[str], stem: Path) -> list[Path]:
    """Per gated layer (rows of ``deltanas.search.gate_table``), each labelled design's threshold (log scale;
    depthwise layers that pass every change have none) and the fraction of output positions it computed."""
    names = [r["layer"] for r in rows]
    x = range(len(rows))
    fig, (thr, frac) = plt.subplots(2, 1, figsize=(max(8, 0.25 * len(rows)), 7), sharex=True)
    for label, colour in zip(labels, ("#7f7f7f", "#d62728", "#1f77b4", "#2ca02c")):
        points = [(i, r[f"{label} threshold"]) for i, r in zip(x, rows) if r[f"{label} threshold"]]
        thr.plot([i for i, _ in points], [v for _, v in points], "o-", ms=3, color=colour, label=label)
        frac.plot(list(x), [r[f"{label} fraction"] for r in rows], "o-", ms=3, color=colour, label=label)
    thr.set_yscale("log")
    thr.set_ylabel("threshold (x key-frame norm)")
    thr.set_title("gate threshold per layer")
    thr.legend(fontsize=7)
    frac.set_ylabel("active fraction")
    frac.set_title("output positions computed per delta frame (calibration frames)")
    frac.set_xticks(list(x), names, rotation=90, fontsize=6)
    return save_figure(fig, Path(stem))


def plot_online(rows: Sequence[dict], target: float | None, stem: Path, window: int = 16) -> list[Path]:
    """An online stream over time: MMACs and ms per frame (averaged over ``window`` frames), the key-frame
    interval and gate scale in force, key frames and cuts; the checks' fidelity (and, where the rows have
    it, the fidelity against the teacher pooled over ``window`` frames) against ``target``."""
    frames = [r["frame"] for r in rows]

    def smooth(values: list[float]) -> list[float]:
        return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                for i in range(len(values))]

    fig, (cost, knobs, agree) = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    cost.plot(frames, smooth([r["macs"] / 1e6 for r in rows]), color="#1f77b4", label="MMACs/frame")
    ms = cost.twinx()
    ms.plot(frames, smooth([r["ms"] for r in rows]), color="#ff7f0e", label="ms/frame")
    cost.set_ylabel("MMACs / frame")
    ms.set_ylabel("ms / frame")
    cost.set_title(f"cost over {window}-frame windows; key frames (ticks) and scene cuts (red)")
    for r in rows:
        if r["key"]:
            cost.axvline(r["frame"], color="#d62728" if r["cut"] else "#cccccc", lw=0.6, zorder=0)
    knobs.step(frames, [r["interval"] for r in rows], where="post", color="#2ca02c", label="interval")
    knobs.set_ylabel("key-frame interval")
    knobs.set_yscale("log", base=2)
    scale = knobs.twinx()
    scale.step(frames, [r["gate_scale"] for r in rows], where="post", color="#9467bd", label="gate scale")
    scale.set_ylabel("gate scale")
    scale.set_yscale("log", base=2)
    checks = [(r["frame"], 1 - float(r["check_err"]) / float(r["check_change"])) for r in rows
              if r["check_err"] != "" and float(r["check_change"]) > 0]
    if checks:
        agree.plot(*zip(*checks), "o", ms=3, color="#1f77b4", label="check")
    if rows and "sq_err" in rows[0]:
        pooled = []
        for i in range(len(rows)):
            part = rows[max(0, i - window + 1):i + 1]
            change = sum(p["sq_teacher_change"] for p in part)
            pooled.append(1 - sum(p["sq_err"] for p in part) / change if change > 0 else float("nan"))
        agree.plot(frames, pooled, color="#444444", lw=1, label=f"against the teacher, {window} frames")
    if target is not None:
        agree.axhline(target, color="#d62728", ls="--", lw=1, label="target")
    agree.set_ylim(-0.5, 1.05)
    agree.set_ylabel("fidelity")
    agree.set_xlabel("frame")
    agree.legend(loc="lower right", fontsize=7)
    return save_figure(fig, Path(stem))
