"""Skip-convolution baselines: the teacher copy gated everywhere, as architectures."""

from __future__ import annotations

from typing import Sequence

from ._arch import Arch
from ._ops import make_op

__all__ = ["skipconv_designs"]


def skipconv_designs(ps: Sequence[float] = (0.5, 0.35, 0.25, 0.15), thresholds: Sequence[float] = (1.0, 2.0, 3.0),
                     running: Sequence[float] = (0.03, 0.05), *, block: int | None = None, learned: bool = False,
                     teacher: str | None = None) -> dict[str, Arch]:
    """The teacher copy gated everywhere: ``uniform:gated:pP(full)`` per ``P`` in ``ps``,
    ``uniform:gated:tT(full)`` per ``T`` in ``thresholds``, ``uniform:gated:wA:run(full)`` (a running
    reference) per ``A`` in ``running`` (not with ``block``) and ``gated:learned(full)`` with
    ``learned``, keyed by their operator spec (a valid ``--arch`` value). Every conv is gated,
    depthwise ones included. ``full`` has nothing to train; a learned gate does, and needs a MAC
    penalty on its expected fraction (:meth:`GatedDelta.expected_macs`) or it learns to update everything.
    """
    suffix = f":b{block}" if block is not None else ""
    specs = [f"gated:p{p:g}{suffix}(full)" for p in ps] + [f"gated:t{t:g}{suffix}(full)" for t in thresholds]
    if block is None:
        specs += [f"gated:w{a:g}:run(full)" for a in running]
    if learned:
        specs.append(f"gated:learned{suffix}(full)")
    designs: dict[str, Arch] = {}
    for spec in specs:
        op = make_op(spec)  # validates p, t and the block
        designs[str(op)] = Arch.uniform(str(op), teacher=teacher)
    return designs
