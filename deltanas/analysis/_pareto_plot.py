"""Drawing the Pareto chart of a :class:`~deltanas.analysis.ParetoResult` (PNG and SVG)."""

from __future__ import annotations

from pathlib import Path

from .plots import save_figure  # (sets the headless backend first)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from ._pareto import ParetoResult  # noqa: E402

__all__ = ["plot_pareto"]

# family -> (marker, colour, size, z-order); unknown families get the default cycle
_STYLE = {
    "teacher": ("*", "#000000", 220, 5),
    "manual": ("s", "#1f77b4", 46, 3),
    "optuna": ("o", "#7f7f7f", 22, 2),
    "optuna-hparams": ("P", "#9467bd", 40, 2),
    "train": ("^", "#2ca02c", 50, 3),
    "search": ("D", "#d62728", 60, 4),
}
_METRIC_NAMES = {"top1": "top-1 agreement", "dense": "dense agreement", "miou": "mIoU of class maps",
                 "fidelity": "delta fidelity"}


def plot_pareto(result: ParetoResult, stem: "str | Path", title: str | None = None) -> list[Path]:
    """MACs per frame (log x) against the metric; one marker per family, the front as a step line,
    the teacher marked and every manual design labelled. Writes ``stem.png`` and ``stem.svg``."""
    points = result.points.dropna(subset=["macs_per_frame", result.metric])
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for i, (family, group) in enumerate(points.groupby("family", sort=False)):
        marker, colour, size, z = _STYLE.get(str(family), ("v", f"C{(i + 5) % 10}", 40, 3))
        ax.scatter(group["macs_per_frame"] / 1e6, group[result.metric], marker=marker, s=size, c=colour,
                   alpha=0.65 if family == "optuna" else 0.95, edgecolors="none", zorder=z,
                   label=f"{family} ({len(group)})")
        if family in ("teacher", "manual", "search", "train"):
            for _, r in group.iterrows():
                ax.annotate(str(r["label"]), (r["macs_per_frame"] / 1e6, r[result.metric]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points", zorder=6)
    front = points[points["on_front"]].sort_values("macs_per_frame")
    if len(front):
        xs = list(front["macs_per_frame"] / 1e6)
        ys = list(front[result.metric])
        ref_x = result.reference[0] / 1e6
        if ref_x > xs[-1]:
            xs.append(ref_x)
            ys.append(ys[-1])
        ax.step(xs, ys, where="post", color="#d62728", lw=1.2, alpha=0.8, zorder=1, label="Pareto front")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda x, _: f"{x:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("MACs per frame, averaged over a key-frame group (millions, log scale)")
    ax.set_ylabel(f"{_METRIC_NAMES.get(result.metric, result.metric)} with the teacher (held-out)")
    ref_m, ref_v = result.reference
    ax.set_title(title or (f"hypervolume {result.hypervolume / 1e6:.4g} M·{result.metric} "
                           f"({100 * result.hypervolume_share:.1f}% of the box up to {ref_m / 1e6:.0f}M MACs, "
                           f"{result.metric} from {ref_v:g})"), fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, Path(stem))
