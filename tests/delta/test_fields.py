"""Operator specs as objects with named fields: the exact same OpSpec back, in arch.json, and clear errors."""

from __future__ import annotations

import json

import pytest

from deltanas.delta import OP_TYPES, Arch, OpSpec, make_op, parse_op
from deltanas.errors import ArchError

from ._helpers import EXAMPLE_SPEC
from .test_running_gate import RUNNING_SPECS
from .test_spec_arch import ROUND_TRIPS

SPECS = sorted({*EXAMPLE_SPEC.values(), *RUNNING_SPECS, *(c for _, c in ROUND_TRIPS),
                "gated:w0.0257:run:f0.396(full)", "gated:p0.25(full,lowrank:0.125)", "gated:t1:b2:f0.31(full)",
                "gated:learned:f0.3(channel:2)", "gated:p1:run:f0.5(depthwise)", "lowrank:1e-3", "lowrank:.5",
                "subsample:2(gated:p0.5(full))"})


@pytest.mark.parametrize("text", SPECS)
def test_every_spec_reads_back_from_its_fields_exactly(text):
    spec = parse_op(text)
    fields = spec.to_fields()
    assert parse_op(json.loads(json.dumps(fields))) == spec
    assert str(make_op(fields)) == str(make_op(text))


def test_every_registered_op_has_named_fields():
    for name, text in EXAMPLE_SPEC.items():
        assert name in OP_TYPES
        fields = parse_op(text).to_fields()
        assert fields == name or ("args" not in fields and "inners" not in fields), fields


@pytest.mark.parametrize("text,fields", [
    ("gated:w0.0257:run:f0.396(full)", {"op": "gated", "gate": "w", "threshold": 0.0257, "reference": "running",
                                        "fraction": 0.396, "inner": "full"}),
    ("gated:p0.25:b2(full,lowrank:0.125)", {"op": "gated", "gate": "p", "top": 0.25, "reference": "key", "block": 2,
                                            "inner": "full", "rest": {"op": "lowrank", "rank": 0.125}}),
    ("gated:changed:run(full)", {"op": "gated", "gate": "changed", "reference": "running", "inner": "full"}),
    ("lowrank:0.25", {"op": "lowrank", "rank": 0.25}),
    ("lowrank:8", {"op": "lowrank", "rank": 8}),
    ("lowrank:1e-3", {"op": "lowrank", "rank": "1e-3"}),  # a number that would not write back the same
    ("channel:4", {"op": "channel", "factor": 4}),
    ("subsample(full)", {"op": "subsample", "inner": "full"}),
    ("subsample:3(lowrank:0.5)", {"op": "subsample", "factor": 3, "inner": {"op": "lowrank", "rank": 0.5}}),
    ("depthwise", "depthwise"),
])
def test_the_field_names(text, fields):
    assert parse_op(text).to_fields() == fields
    assert str(parse_op(fields)) == text


def test_objects_written_by_hand():
    assert str(parse_op({"op": "gated", "gate": "w", "threshold": 0.02, "reference": "running",
                         "inner": {"op": "full"}})) == "gated:w0.02:run(full)"
    assert str(parse_op({"op": "gated", "gate": "t", "threshold": "1", "inner": "lowrank:0.5"})) == \
        "gated:t1(lowrank:0.5)"  # reference key by default; a number may be a string
    assert str(parse_op({"op": "full"})) == "full"
    assert parse_op({"op": "foo", "args": ["1", 2], "inners": ["full"]}) == OpSpec("foo", ("1", "2"), OpSpec("full"))


@pytest.mark.parametrize("data,fragment", [
    ({"rank": 0.25}, "no 'op'"),
    ({"op": 3}, "no 'op'"),
    ({"op": "lowrank"}, "lowrank needs 'rank'"),
    ({"op": "lowrank", "rnak": 0.25}, "unknown field 'rnak' for lowrank; its fields: op, rank"),
    ({"op": "lowrank", "rank": True}, "'rank' must be a number"),
    ({"op": "lowrank", "rank": [1]}, "'rank' must be a number"),
    ({"op": "subsample", "factor": 2}, "subsample needs 'inner'"),
    ({"op": "gated", "gate": "q", "inner": "full"}, "'gate' must be one of p, t, a, w, changed, learned"),
    ({"op": "gated", "gate": "p", "inner": "full"}, "the gate p needs 'top'"),
    ({"op": "gated", "gate": "p", "threshold": 0.1, "inner": "full"}, "the gate p takes 'top', not 'threshold'"),
    ({"op": "gated", "gate": "changed", "threshold": 0.1, "reference": "running", "inner": "full"},
     "the gate changed takes no value"),
    ({"op": "gated", "gate": "w", "threshold": 0.1, "reference": "run", "inner": "full"},
     "'reference' must be key or running"),
    ({"op": "gated", "gate": "t", "threshold": 1}, "gated needs 'inner'"),
    ({"op": "gated", "gate": "t", "threshold": 1, "inner": 5}, "an operator is a string or an object"),
    ({"op": "squeeze", "factor": 2}, "operator 'squeeze' has no named fields"),
    ({"op": "foo", "args": "1"}, "'args' and 'inners' must be lists"),
])
def test_malformed_objects_raise_one_arch_error_line(data, fragment):
    with pytest.raises(ArchError) as info:
        make_op(data)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert message.startswith(f"bad operator object {json.dumps(data)}: ")


def test_values_are_checked_where_the_operators_are():
    with pytest.raises(ArchError, match="rank fraction must be in"):
        make_op({"op": "lowrank", "rank": 2.5})
    with pytest.raises(ArchError, match="needs run"):
        make_op({"op": "gated", "gate": "a", "threshold": 0.1, "inner": "full"})
    with pytest.raises(ArchError, match="unknown operator 'squeeze'"):
        make_op({"op": "squeeze", "args": [2]})


def test_arch_json_holds_either_form_per_layer(tmp_path):
    arch = Arch(layers={"stem": "gated:w0.0257:run:f0.396(full)", "dw": "subsample(full)", "pw": "zero"},
                default="lowrank:0.25", teacher="efficientnet_lite0")
    assert arch.to_dict() == arch.to_dict("compact")  # compact by default: the files stay as they were
    assert arch.to_dict()["layers"]["stem"] == "gated:w0.0257:run:f0.396(full)"
    fields = arch.to_dict("fields")
    assert fields["layers"]["stem"]["threshold"] == 0.0257 and fields["default"] == {"op": "lowrank", "rank": 0.25}
    assert fields["layers"]["pw"] == "zero"
    assert Arch.from_dict(json.loads(json.dumps(fields))) == arch
    mixed = arch.to_dict()
    mixed["layers"]["dw"] = {"op": "subsample", "inner": "full"}
    assert Arch.from_dict(mixed) == arch
    first = arch.save(tmp_path / "a.json", "fields")
    again = Arch.load(first).save(tmp_path / "b.json", "fields")
    assert first.read_bytes() == again.read_bytes()
    with pytest.raises(ArchError, match="unknown architecture form 'verbose'"):
        arch.to_dict("verbose")
    with pytest.raises(ArchError, match="bad operator object"):
        Arch.from_dict({"layers": {"stem": {"op": "lowrank"}}})
