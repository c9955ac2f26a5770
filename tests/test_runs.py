"""Run folders: one summary.json schema for every kind of run (old files still read), and gathering the
points of run folders for the Pareto analysis."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from deltanas.errors import ConfigError
from deltanas.runs import RUN_KINDS, SUMMARY_VERSION, RunDir, RunSummary, gather_points


def _summary(folder, **kw):
    folder.mkdir(parents=True)
    data = {"macs_per_frame": 50e6, "teacher_macs": 200e6, "keyframe_interval": 8,
            "test": {"top1": 0.8, "dense": 0.7, "miou": 0.5, "fidelity": 0.6}}
    data.update(kw)
    (folder / "summary.json").write_text(json.dumps(data))


def test_gather_reads_runs_adds_the_teacher_and_refuses_mixtures(tmp_path):
    _summary(tmp_path / "runs" / "search-0p2", target_delta_macs=40e6, budget="x")
    _summary(tmp_path / "runs" / "train-a", macs_per_frame=80e6)
    base = tmp_path / "runs" / "base"
    base.mkdir()
    pd.DataFrame([{"family": "teacher", "label": "teacher", "design": "full", "macs_per_frame": 200e6,
                   "teacher_macs": 200e6, "top1": 1, "dense": 1, "miou": 1, "fidelity": 1},
                  {"family": "manual", "label": "zero (reuse)", "design": "zero", "macs_per_frame": 25e6,
                   "teacher_macs": 200e6, "top1": 0.6, "dense": 0.6, "miou": 0.4, "fidelity": 0.0}]
                 ).to_csv(base / "points.csv", index=False)
    points = gather_points([tmp_path / "runs"])  # a folder of run folders
    assert sorted(points["family"]) == ["manual", "search", "teacher", "train"]
    _summary(tmp_path / "runs" / "search-gated", target_delta_macs=40e6, budget="x", test_macs_per_frame=47e6)
    gated = gather_points([tmp_path / "runs" / "search-gated"])  # data-dependent gates: what they spent
    assert gated[gated["family"] == "search"].iloc[0]["macs_per_frame"] == 47e6
    only_runs = gather_points([tmp_path / "runs" / "search-0p2", tmp_path / "runs" / "train-a"])
    teacher = only_runs[only_runs["family"] == "teacher"].iloc[0]  # added from the runs' teacher MACs
    assert teacher["macs_per_frame"] == 200e6 and teacher["top1"] == 1.0
    _summary(tmp_path / "other" / "k4", keyframe_interval=4)
    with pytest.raises(ConfigError, match="keyframe intervals"):
        gather_points([tmp_path / "runs", tmp_path / "other" / "k4"])
    _summary(tmp_path / "other2" / "big", teacher_macs=400e6)
    with pytest.raises(ConfigError, match="not comparable"):
        gather_points([tmp_path / "runs", tmp_path / "other2" / "big"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no points"):
        gather_points([tmp_path / "empty"])


def test_a_summary_writes_its_kind_and_reads_back(tmp_path):
    run = RunDir.create("t", tmp_path)
    summary = RunSummary("search", "efficientnet_lite0", 8, 200e6, 50e6, 47e6, {"top1": 0.8},
                         extra={"budget": "0.2x", "layers": [{"layer": "stem", "op": "zero"}]})
    run.write_summary(summary)
    data = json.loads(run.summary.read_text())
    assert data["kind"] == "search" and data["version"] == SUMMARY_VERSION
    assert data["budget"] == "0.2x" and data["test"] == {"top1": 0.8}  # the kind's own keys at the top level
    assert data["macs_per_frame"] == 50e6 and data["test_macs_per_frame"] == 47e6
    assert run.read_summary() == summary and summary.spent_macs_per_frame == 47e6
    bare = RunSummary("sweep", "efficientnet_lite0", 4, extra={"study": "s"})
    assert bare.to_dict() == {"kind": "sweep", "version": SUMMARY_VERSION, "teacher": "efficientnet_lite0",
                              "keyframe_interval": 4, "study": "s"}  # no None written
    assert bare.spent_macs_per_frame is None and RunSummary.from_dict(bare.to_dict()) == bare
    assert set(RUN_KINDS) == {"train", "search", "baselines", "sweep"}


@pytest.mark.parametrize("data,kind", [
    ({"macs_per_frame": 1.0, "arch": "uniform:zero", "steps": 3}, "train"),
    ({"macs_per_frame": 1.0, "budget": "0.2x per delta frame", "target_delta_macs": 3.0}, "search"),
    ({"macs_per_frame": 1.0, "target_delta_macs": 3.0}, "search"),
])
def test_summaries_of_earlier_versions_read_as_train_or_search(data, kind):
    summary = RunSummary.from_dict(data)
    assert summary.kind == kind and summary.macs_per_frame == 1.0 and summary.version == SUMMARY_VERSION
    assert {k: v for k, v in summary.to_dict().items() if k not in ("kind", "version")} == data


@pytest.mark.parametrize("data,fragment", [
    ({"steps": 3}, "no kind and no macs_per_frame"),
    ({"kind": "benchmark"}, "unknown run kind 'benchmark'"),
    ({"kind": "train", "version": 99}, "summary version 99"),
    (["train"], "expected a JSON object"),
])
def test_bad_summaries_say_why(data, fragment):
    with pytest.raises(ConfigError, match=fragment):
        RunSummary.from_dict(data)


def test_extra_keys_cannot_shadow_the_common_ones():
    with pytest.raises(ConfigError, match="common fields"):
        RunSummary("train", extra={"macs_per_frame": 1.0})


def test_gather_takes_the_family_from_the_kind(tmp_path):
    RunDir.create("tuned", tmp_path).write_summary(
        RunSummary("search", "efficientnet_lite0", 8, 200e6, 50e6, test={"top1": 0.7}))  # no budget key
    RunDir.create("many", tmp_path).write_summary(RunSummary("baselines", "efficientnet_lite0", 8, 200e6))
    points = gather_points([tmp_path / "tuned"])
    assert list(points["family"]) == ["teacher", "search"] and points.iloc[1]["top1"] == 0.7
    with pytest.raises(ConfigError, match="a baselines run without its points file"):
        gather_points([tmp_path / "many"])
