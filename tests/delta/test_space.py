"""Search spaces read from YAML: the built-in ones, candidates per layer kind, and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from deltanas.delta import LayerInfo, SearchSpace, builtin_search_spaces, make_op
from deltanas.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def layer(name: str, *args, in_hw=(16, 16), **kwargs) -> LayerInfo:
    return LayerInfo.from_conv(name, nn.Conv2d(*args, **kwargs), in_hw)


LAYERS = {
    "pointwise": layer("pw", 32, 64, 1),
    "pointwise_stride2": layer("pw2", 32, 64, 1, stride=2),
    "spatial": layer("k3", 32, 64, 3, padding=1),
    "spatial_5x5_s2": layer("k5", 32, 48, 5, stride=2, padding=2),
    "grouped": layer("g", 32, 64, 3, padding=1, groups=4),
    "depthwise": layer("dw", 32, 32, 3, padding=1, groups=32),
    "depthwise_5x5_s2": layer("dw5", 32, 32, 5, stride=2, padding=2, groups=32),
}


def names(ops) -> list[str]:
    return [str(op) for op in ops]


def test_default_is_the_checkout_yaml():
    # the package's copy, which the checkout's search_spaces/ links to (tests/test_packaging.py)
    assert builtin_search_spaces()["default"] == (REPO / "search_spaces" / "default.yaml").resolve()
    by_name = SearchSpace.load("default")
    by_path = SearchSpace.load(REPO / "search_spaces" / "default.yaml")
    assert by_name.dense == by_path.dense and by_name.spatial == by_path.spatial
    assert by_name.name == "default"
    assert "lowrank:0.25" in by_name.dense and "depthwise" in by_name.spatial
    assert SearchSpace.load() == by_name


@pytest.mark.parametrize("space_name", sorted(builtin_search_spaces()))
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_builtin_candidates_fit_and_start_with_full(space_name, kind):
    info = LAYERS[kind]
    ops = SearchSpace.load(space_name).candidates(info)
    assert names(ops)[0] == "full"
    assert len(names(ops)) == len(set(names(ops)))
    assert all(op.unfit_reason(info) is None for op in ops)


def test_default_candidates_per_kind():
    space = SearchSpace.load("default")
    for kind in ("depthwise", "depthwise_5x5_s2"):
        got = set(names(space.candidates(LAYERS[kind])))
        # nothing to factor in a depthwise conv: only reuse, exact, subsampled or gated updates
        assert not any(n.startswith(("lowrank", "channel", "depthwise")) for n in got)
        assert {"full", "zero", "subsample(full)", "gated:p0.25(full)"} <= got
    for kind in ("pointwise", "pointwise_stride2"):
        got = names(space.candidates(LAYERS[kind]))
        assert not any(n.startswith(("depthwise", "channel")) for n in got)
        assert "lowrank:0.5" in got and "zero" in got
    for kind in ("spatial", "spatial_5x5_s2", "grouped"):
        got = names(space.candidates(LAYERS[kind]))
        assert {"channel:2", "channel:4", "depthwise", "lowrank:0.25", "subsample(full)"} <= set(got)


def test_full_first_even_when_not_listed(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("candidates:\n  dense: [zero, 'lowrank : 0.5', lowrank:0.5]\n  depthwise: [zero]\n")
    space = SearchSpace.load(path)
    assert space.dense == ("zero", "lowrank:0.5")  # canonical, duplicates dropped
    assert names(space.candidates(LAYERS["pointwise"])) == ["full", "zero", "lowrank:0.5"]
    assert names(space.candidates(LAYERS["depthwise"])) == ["full", "zero"]
    assert space.name == str(path)


def test_a_new_op_needs_no_code_change(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: mine\ncandidates:\n  dense: ['subsample:3(lowrank:0.5)']\n"
                    "  depthwise: ['subsample:4(full)', lowrank:0.5]\n")
    space = SearchSpace.load(path)
    assert space.name == "mine"
    assert names(space.candidates(LAYERS["spatial"])) == ["full", "subsample:3(lowrank:0.5)"]
    # an op that does not fit a depthwise layer is left out, not an error
    assert names(space.candidates(LAYERS["depthwise"])) == ["full", "subsample:4(full)"]


def test_subsample_left_out_where_the_input_is_too_small():
    tiny = layer("tiny", 8, 8, 5, in_hw=(6, 6))  # pooled 3x3 < 5x5 kernel
    got = names(SearchSpace.load("default").candidates(tiny))
    assert not any(n.startswith("subsample") for n in got)
    assert make_op("subsample(full)").unfit_reason(tiny) is not None


@pytest.mark.parametrize("content,fragments", [
    ("candidates: [full\n  dense: : :", ["malformed YAML"]),
    ("candidates:\n  dense: [full, foo]\n", ["foo"]),
    ("candidates:\n  dense: [full, 'lowrank:2.5']\n", ["lowrank:2.5"]),
    ("candidates:\n  dense: []\n", ["empty", "dense"]),
    ("candidates:\n  dense: [full, 'gated:w0.05:run(full)']\n", ["gated:w0.05:run(full)", "running reference"]),
    ("candidates:\n  spatial: [full]\n", ["empty", "dense"]),
    ("candidates:\n  dense: [full]\n  pointwise: [zero]\n", ["pointwise", "dense", "spatial", "depthwise"]),
    ("candidates:\n  dense: full\n", ["candidates.dense", "list"]),
    ("candidates:\n  dense: [1, 2]\n", ["candidates.dense"]),
    ("- full\n- zero\n", ["candidates"]),
    ("name: x\n", ["candidates"]),
    ("", ["candidates"]),
])
def test_yaml_errors_raise_config_error(tmp_path, content, fragments):
    path = tmp_path / "space.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        SearchSpace.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_space_name_lists_the_builtin_ones(tmp_path):
    with pytest.raises(ConfigError) as info:
        SearchSpace.load("no-such-space")
    assert "no-such-space" in str(info.value) and "default" in str(info.value)
    with pytest.raises(ConfigError):
        SearchSpace.load(tmp_path)  # a directory is not a search space file
