"""Agreement of a delta model with its teacher (the teacher's output is the reference).

Computing only: :class:`AgreementMeter` accumulates groups of frames and returns plain numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

__all__ = ["AgreementMeter", "Agreement", "GroupSums"]


@dataclass(frozen=True)
class GroupSums:
    """One key-frame group's sums, from which top-1, dense and fidelity pool as ratios of sums."""

    frames: int
    top1_hits: int
    dense_hits: int
    positions: int
    err_sq: float
    delta_sq: float


@dataclass(frozen=True)
class Agreement:
    """Agreement on the delta frames (key frames are exact and left out of every figure)."""

    frames: int
    top1: float  # share of frames whose global top-1 class equals the teacher's
    dense: float  # share of positions whose class (classifier at each position) equals the teacher's
    miou: float  # mean IoU of the per-location class maps, over classes present in either
    fidelity: float  # 1 - sum|y_hat - y|^2 / sum|y - y_key|^2 on the logits (1 exact, 0 = reuse)
    feature_error: float  # sum|f_hat - f|^2 / sum|f|^2 on the last feature map
    flicker: float  # share of consecutive frame pairs whose top-1 changes, delta model minus teacher
    by_distance: dict[int, dict[str, float]] = field(default_factory=dict)  # distance -> top1, fidelity
    # share of frames whose teacher class is the key frame's: the top-1 of reusing the key frame on the
    # same frames, what top-1 starts from (frames whose class never changes cannot rank models by top-1)
    reuse_top1: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


class AgreementMeter:
    """Accumulate (teacher, delta model) outputs of groups of consecutive frames, key frame first."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.frames = 0
        self.top1_hits = 0
        self.reuse_hits = 0
        self.dense_hits = 0
        self.positions = 0
        self.intersection = torch.zeros(num_classes, dtype=torch.float64)
        self.union = torch.zeros(num_classes, dtype=torch.float64)
        self.err_sq = 0.0
        self.delta_sq = 0.0
        self.feat_err_sq = 0.0
        self.feat_sq = 0.0
        self.changes_model = 0
        self.changes_teacher = 0
        self.pairs = 0
        self.per_distance: dict[int, list[float]] = {}  # d -> [frames, hits, err_sq, delta_sq]
        self.groups: list[GroupSums] = []  # per group, for paired bootstrap comparisons

    @torch.no_grad()
    def update(self, teacher_logits: torch.Tensor, model_logits: torch.Tensor,
               teacher_dense: torch.Tensor | None = None, model_dense: torch.Tensor | None = None,
               teacher_features: torch.Tensor | None = None, model_features: torch.Tensor | None = None,
               distances: torch.Tensor | None = None) -> None:
        """One group: logits (T, classes) with row 0 the key frame; dense maps (T, classes, h, w)."""
        t = teacher_logits.shape[0]
        if t < 2:
            return
        if distances is None:
            distances = torch.arange(1, t)
        y, y_hat, y_key = teacher_logits[1:].double(), model_logits[1:].double(), teacher_logits[:1].double()
        cls, cls_hat = y.argmax(1), y_hat.argmax(1)
        err = (y_hat - y).pow(2).sum(1)
        delta = (y - y_key).pow(2).sum(1)
        hits = int((cls == cls_hat).sum())
        self.frames += t - 1
        self.top1_hits += hits
        self.reuse_hits += int((cls == y_key.argmax(1)).sum())
        self.err_sq += float(err.sum())
        self.delta_sq += float(delta.sum())
        dense_hits, positions = 0, 0
        for i, d in enumerate(distances.tolist()):
            row = self.per_distance.setdefault(int(d), [0, 0, 0.0, 0.0])
            row[0] += 1
            row[1] += int(cls[i] == cls_hat[i])
            row[2] += float(err[i])
            row[3] += float(delta[i])
        # flicker over consecutive frames of the group (key included: it is the teacher's class)
        all_cls, all_hat = teacher_logits.argmax(1), model_logits.argmax(1)
        self.changes_teacher += int((all_cls[1:] != all_cls[:-1]).sum())
        self.changes_model += int((all_hat[1:] != all_hat[:-1]).sum())
        self.pairs += t - 1
        if teacher_dense is not None and model_dense is not None:
            m, m_hat = teacher_dense[1:].argmax(1).flatten(), model_dense[1:].argmax(1).flatten()
            dense_hits, positions = int((m == m_hat).sum()), m.numel()
            self.dense_hits += dense_hits
            self.positions += positions
            k = self.num_classes
            inter = torch.bincount(m[m == m_hat], minlength=k).double()
            self.intersection += inter
            self.union += torch.bincount(m, minlength=k).double() + torch.bincount(m_hat, minlength=k).double() - inter
        self.groups.append(GroupSums(t - 1, hits, dense_hits, positions, float(err.sum()), float(delta.sum())))
        if teacher_features is not None and model_features is not None:
            f, f_hat = teacher_features[1:].double(), model_features[1:].double()
            self.feat_err_sq += float((f_hat - f).pow(2).sum())
            self.feat_sq += float(f.pow(2).sum())

    def result(self) -> Agreement:
        present = self.union > 0
        miou = float((self.intersection[present] / self.union[present]).mean()) if present.any() else float("nan")
        nan = float("nan")
        return Agreement(
            frames=self.frames,
            top1=self.top1_hits / self.frames if self.frames else nan,
            dense=self.dense_hits / self.positions if self.positions else nan,
            miou=miou,
            fidelity=1.0 - self.err_sq / self.delta_sq if self.delta_sq > 0 else nan,
            feature_error=self.feat_err_sq / self.feat_sq if self.feat_sq > 0 else nan,
            flicker=(self.changes_model - self.changes_teacher) / self.pairs if self.pairs else nan,
            by_distance={
                d: {"frames": n, "top1": hits / n, "fidelity": 1.0 - e / s if s > 0 else nan}
                for d, (n, hits, e, s) in sorted(self.per_distance.items())
            },
            reuse_top1=self.reuse_hits / self.frames if self.frames else nan,
        )
