"""Measuring delta models: agreement with the teacher, Pareto fronts, plots."""

from __future__ import annotations

from ._evaluate import EvalResult, evaluate
from ._metrics import Agreement, AgreementMeter

__all__ = ["Agreement", "AgreementMeter", "EvalResult", "evaluate"]
