"""Drawing only (matplotlib, headless): the data comes from the analysis functions."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .._io import atomic_write  # noqa: E402

__all__ = ["plot_arch_choice", "save_figure", "op_family"]

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
