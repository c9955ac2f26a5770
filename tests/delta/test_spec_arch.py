"""Operator spec parsing and architectures (arch.json): round trips, validation, resolution."""

from __future__ import annotations

import json

import pytest
from torch import nn

from deltanas.delta import Arch, LayerInfo, OpSpec, make_op, parse_op, trace_layers
from deltanas.errors import ArchError

from ._helpers import seeded_

ROUND_TRIPS = [
    ("full", "full"),
    ("zero", "zero"),
    ("lowrank:0.25", "lowrank:0.25"),
    ("lowrank:3", "lowrank:3"),
    ("  lowrank : 0.25  ", "lowrank:0.25"),
    ("channel:4", "channel:4"),
    ("depthwise", "depthwise"),
    ("subsample(full)", "subsample(full)"),
    ("subsample:2(lowrank:0.25)", "subsample:2(lowrank:0.25)"),
    (" subsample : 3 ( lowrank:0.5 ) ", "subsample:3(lowrank:0.5)"),
    ("subsample(subsample(full))", "subsample(subsample(full))"),
    ("\tchannel:\n2", "channel:2"),
]


@pytest.mark.parametrize("text,canonical", ROUND_TRIPS)
def test_parse_op_round_trip(text, canonical):
    spec = parse_op(text)
    assert str(spec) == canonical
    assert parse_op(str(spec)) == spec  # canonical form parses back to the same spec
    assert str(make_op(text)) == canonical


def test_parse_op_structure():
    spec = parse_op("subsample:2(lowrank:0.25)")
    assert spec == OpSpec("subsample", ("2",), OpSpec("lowrank", ("0.25",)))
    assert parse_op(spec) is spec
    with pytest.raises(ArchError):
        parse_op(3)  # type: ignore[arg-type]


MALFORMED = ["", "lowrank:", "subsample(full", "full)", "lowrank:abc", "lowrank:2.5", "zero:1", "subsample",
             "full(zero)", "foo", "lowrank:0", "lowrank:-0.5", "channel:x", "subsample:two(full)",
             "lowrank:0.5:1", "(full)", "full,zero", "lowrank:0.5)"]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_specs_raise_arch_error_naming_the_text(text):
    with pytest.raises(ArchError) as info:
        make_op(text)
    assert repr(text) in str(info.value) or f"operator {text}:" in str(info.value)


def test_bad_inner_op_is_named():
    with pytest.raises(ArchError, match="'foo'"):
        make_op("subsample(foo)")
    with pytest.raises(ArchError, match="lowrank:7.5"):
        make_op("subsample:2(lowrank:7.5)")


@pytest.mark.parametrize("text", ["", "lowrank:", "subsample(full", "full)", "(full)", "full,zero"])
def test_syntax_errors_already_in_parse_op(text):
    with pytest.raises(ArchError, match="bad operator spec"):
        parse_op(text)


def test_unknown_op_lists_the_known_ones():
    with pytest.raises(ArchError) as info:
        make_op("foo")
    assert "'foo'" in str(info.value) and "lowrank" in str(info.value) and "subsample" in str(info.value)


# -- Arch ---------------------------------------------------------------------------------------

class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)

    def forward(self, x):
        return self.pw(self.dw(self.stem(x)))


@pytest.fixture(scope="module")
def layers() -> list[LayerInfo]:
    infos, linear = trace_layers(seeded_(SmallNet(), 0), (16, 16))
    assert [i.name for i in infos] == ["stem", "dw", "pw"] and linear == 0
    return infos


def sample_arch() -> Arch:
    return Arch(layers={"stem": "lowrank : 0.5", "dw": "subsample(full)", "pw": "zero"}, default="channel:2",
                teacher="efficientnet_lite0")


def test_arch_json_round_trip_is_byte_identical(tmp_path):
    arch = sample_arch()
    first = arch.save(tmp_path / "a" / "arch.json")
    loaded = Arch.load(first)
    assert loaded == arch
    assert loaded.layers == {"stem": "lowrank:0.5", "dw": "subsample(full)", "pw": "zero"}
    second = loaded.save(tmp_path / "b.json")
    assert first.read_bytes() == second.read_bytes()
    data = json.loads(first.read_text())
    assert data["format"] == "deltanas-arch" and data["version"] == 1 and data["default"] == "channel:2"


def test_arch_parse_uniform_bare_and_path(tmp_path):
    for text in ("uniform:lowrank:0.25", "lowrank:0.25", "uniform: lowrank : 0.25"):
        arch = Arch.parse(text, teacher="t")
        assert arch.default == "lowrank:0.25" and dict(arch.layers) == {} and arch.teacher == "t"
    path = sample_arch().save(tmp_path / "arch.json")
    assert Arch.parse(str(path)) == sample_arch()
    other = path.rename(tmp_path / "chosen.arch")  # a file path need not end in .json
    assert Arch.parse(str(other)) == sample_arch()
    with pytest.raises(ArchError):
        Arch.parse("uniform:nonsense")


def test_arch_does_not_mutate_the_callers_dict():
    mapping = {"stem": " lowrank : 0.5 ", "pw": "zero"}
    arch = Arch(layers=mapping)
    assert mapping == {"stem": " lowrank : 0.5 ", "pw": "zero"}
    mapping["dw"] = "full"
    assert dict(arch.layers) == {"stem": "lowrank:0.5", "pw": "zero"}


def test_arch_validates_specs_on_construction():
    with pytest.raises(ArchError, match="foo"):
        Arch(layers={"stem": "foo"})
    with pytest.raises(ArchError, match="lowrank:2.5"):
        Arch(default="lowrank:2.5")


def test_resolve_explicit_and_default(layers):
    ops = sample_arch().resolve(layers)
    assert {name: str(op) for name, op in ops.items()} == {"stem": "lowrank:0.5", "dw": "subsample(full)",
                                                           "pw": "zero"}
    ops = Arch(layers={"pw": "lowrank:0.25"}, default="zero").resolve(layers)
    assert {name: str(op) for name, op in ops.items()} == {"stem": "zero", "dw": "zero", "pw": "lowrank:0.25"}


def test_resolve_refuses_unknown_layer_names(layers):
    with pytest.raises(ArchError) as info:
        Arch(layers={"stem": "full", "blocks.99.conv": "zero"}).resolve(layers)
    assert "blocks.99.conv" in str(info.value)


@pytest.mark.parametrize("layer,spec", [("dw", "lowrank:0.5"), ("dw", "channel:2"), ("dw", "depthwise"),
                                        ("pw", "depthwise")])
def test_resolve_refuses_an_op_that_does_not_fit_a_named_layer(layers, layer, spec):
    with pytest.raises(ArchError) as info:
        Arch(layers={layer: spec}).resolve(layers)
    assert layer in str(info.value) and spec in str(info.value)


@pytest.mark.parametrize("default,expected", [
    ("lowrank:0.25", {"stem": "lowrank:0.25", "dw": "full", "pw": "lowrank:0.25"}),
    ("depthwise", {"stem": "depthwise", "dw": "full", "pw": "full"}),
    ("zero", {"stem": "zero", "dw": "zero", "pw": "zero"}),
])
def test_uniform_default_falls_back_to_full_where_it_does_not_fit(layers, default, expected):
    ops = Arch.parse(f"uniform:{default}").resolve(layers)
    assert {name: str(op) for name, op in ops.items()} == expected


def test_explicit_writes_every_layer(layers):
    arch = Arch.uniform("lowrank:0.25", teacher="t")
    explicit = arch.explicit(arch.resolve(layers))
    assert dict(explicit.layers) == {"stem": "lowrank:0.25", "dw": "full", "pw": "lowrank:0.25"}
    assert explicit.teacher == "t"
    assert explicit.resolve(layers).keys() == arch.resolve(layers).keys()


@pytest.mark.parametrize("content", ["{not json", "", "\xff\xfe"])
def test_malformed_json_raises_arch_error(tmp_path, content):
    path = tmp_path / "arch.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ArchError, match="arch.json"):
        Arch.load(path)


def test_missing_file_raises_arch_error(tmp_path):
    with pytest.raises(ArchError, match="missing.json"):
        Arch.load(tmp_path / "missing.json")


@pytest.mark.parametrize("data,fragment", [
    ({"format": "something-else", "layers": {}}, "something-else"),
    ({"format": "deltanas-arch", "version": 99}, "99"),
    (["full"], "JSON object"),
    ({"layers": ["full"]}, "layers"),
    ({"layers": {"stem": 3}}, "layers"),
    ({"layers": {"stem": "foo"}}, "foo"),
    ({"default": "lowrank:"}, "lowrank:"),
])
def test_wrong_content_raises_arch_error(tmp_path, data, fragment):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchError, match=fragment):
        Arch.load(path)


@pytest.mark.parametrize("version", ["two", None])
def test_non_integer_version_raises_arch_error(tmp_path, version):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"format": "deltanas-arch", "version": version, "layers": {}}))
    with pytest.raises(ArchError):
        Arch.load(path)
