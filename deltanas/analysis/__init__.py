"""Measuring delta models: agreement with the teacher, Pareto fronts, plots."""

from __future__ import annotations

from ._bench import BenchResult, bench, machine_name, speed_summary, speed_words
from ._compare import Difference, paired_bootstrap
from ._evaluate import EvalResult, evaluate, evaluate_adaptive, keyframe_groups
from ._info import model_table
from ._gating import GatedSpend, GatingReport, LayerGating, measure_gating, measured_cost
from ._metrics import Agreement, AgreementMeter, GroupSums
from ._stream import StreamReport, run_stream
from ._pareto import PARETO_COLUMNS, POINT_METRICS, ParetoResult, hypervolume, non_dominated, pareto_analysis

__all__ = ["Agreement", "AgreementMeter", "BenchResult", "bench", "Difference", "EvalResult", "GatedSpend",
           "GatingReport", "GroupSums", "LayerGating", "ParetoResult", "evaluate", "evaluate_adaptive",
           "hypervolume", "keyframe_groups", "machine_name", "measure_gating", "measured_cost", "model_table",
           "non_dominated", "paired_bootstrap", "pareto_analysis", "PARETO_COLUMNS", "POINT_METRICS",
           "StreamReport", "run_stream", "speed_summary", "speed_words"]
