"""Operator specs as objects with named fields: the readable form of a layer in ``arch.json``.

``gated:w0.0257:run:f0.396(full)`` reads as::

    {"op": "gated", "gate": "w", "threshold": 0.0257, "reference": "running", "fraction": 0.396,
     "inner": "full"}

Fields by operator (an operator without any, such as ``full``, is written as its name):

* ``lowrank``: ``rank`` (a fraction of min(C_in, C_out), or an integer rank); ``channel``: ``factor``;
* ``subsample``: ``factor`` (optional, 2 when left out), ``inner``;
* ``gated``: ``gate`` (``p``, ``t``, ``a``, ``w``, ``changed`` or ``learned``) with its value: ``top``
  for ``p`` (the fraction passed), ``threshold`` for ``t``, ``a`` and ``w``, none for the others;
  ``reference`` (``key``, or ``running``); ``block`` and ``fraction`` (optional); ``inner`` and
  ``rest`` (optional);
* any other operator: ``args`` (its arguments, in order) and ``inners``.

``inner`` and ``rest`` hold an operator in either form. A number is written as a JSON number where
that reads back to the same argument text, else as a string (``"1e-3"``), so that both forms parse
to the same :class:`~deltanas.delta.OpSpec`. This module knows the field names only; what the values
may be is checked where the operators are (``make_op``).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ArchError

if TYPE_CHECKING:
    from ._spec import OpSpec

__all__ = ["spec_fields", "fields_text"]

# op -> (its argument fields in the compact order, "?" marking an optional one; its inner-operator fields)
_SIMPLE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "full": ((), ()),
    "zero": ((), ()),
    "depthwise": ((), ()),
    "lowrank": (("rank",), ()),
    "channel": (("factor",), ()),
    "subsample": (("factor?",), ("inner",)),
}
_GATE_VALUE = {"p": "top", "t": "threshold", "a": "threshold", "w": "threshold", "changed": None, "learned": None}
_REFERENCES = {"key": False, "running": True}
_GATED_KEYS = ("op", "gate", "top", "threshold", "reference", "block", "fraction", "inner", "rest")


def spec_fields(spec: "OpSpec") -> "dict[str, Any] | str":
    """The object form of ``spec`` (its name alone when it has no argument and no inner operator)."""
    if not spec.args and not spec.inners:
        return spec.name
    fields = _gated_fields(spec) if spec.name == "gated" else _simple_fields(spec)
    if fields is None:  # an operator without named fields, or a shape its fields cannot say
        fields = {"op": spec.name, "args": [_value(a) for a in spec.args],
                  "inners": [spec_fields(i) for i in spec.inners]}
    return fields


def _simple_fields(spec: "OpSpec") -> dict[str, Any] | None:
    if spec.name not in _SIMPLE:
        return None
    arg_names, inner_names = _SIMPLE[spec.name]
    required = sum(not n.endswith("?") for n in arg_names)
    if not required <= len(spec.args) <= len(arg_names) or len(spec.inners) != len(inner_names):
        return None
    fields: dict[str, Any] = {"op": spec.name}
    fields.update({n.rstrip("?"): _value(a) for n, a in zip(arg_names, spec.args)})
    fields.update({n: spec_fields(i) for n, i in zip(inner_names, spec.inners)})
    return fields


def _gated_fields(spec: "OpSpec") -> dict[str, Any] | None:
    args = list(spec.args)
    if not args or not 1 <= len(spec.inners) <= 2:
        return None
    gate = args.pop(0)
    kind = gate if gate in ("changed", "learned") else gate[:1]
    if kind not in _GATE_VALUE or (_GATE_VALUE[kind] is None) != (kind == gate):
        return None
    fields: dict[str, Any] = {"op": "gated", "gate": kind}
    if _GATE_VALUE[kind]:
        fields[_GATE_VALUE[kind]] = _value(gate[1:])
    fields["reference"] = "running" if args[:1] == ["run"] else "key"
    args = args[fields["reference"] == "running":]
    for key, letter in (("block", "b"), ("fraction", "f")):
        if args and args[0].startswith(letter) and len(args[0]) > 1:
            fields[key] = _value(args.pop(0)[1:])
    if args:
        return None
    fields["inner"] = spec_fields(spec.inners[0])
    if len(spec.inners) > 1:
        fields["rest"] = spec_fields(spec.inners[1])
    return fields


def _value(text: str) -> "int | float | str":
    """An argument as a JSON number where the number writes back as the same text."""
    try:
        number: int | float = int(text) if text.isdigit() else float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) and _text(number) == text else text


def _text(value: Any) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def fields_text(data: Mapping[str, Any]) -> str:
    """The compact spec of an operator object (see the module docstring); a malformed object raises
    one :class:`ArchError` line that shows it."""
    try:
        return _compose(data)
    except _Malformed as exc:
        raise ArchError(f"bad operator object {_show(data)}: {exc}") from None


class _Malformed(Exception):
    pass


def _compose(data: Any) -> str:
    if isinstance(data, str):
        return data
    if not isinstance(data, Mapping):
        raise _Malformed(f"an operator is a string or an object, got {_show(data)}")
    name = data.get("op")
    if not isinstance(name, str) or not name:
        raise _Malformed("no 'op' (the operator's name, e.g. \"op\": \"lowrank\")")
    if "args" in data or "inners" in data:
        _known(data, ("op", "args", "inners"))
        args, inners = data.get("args", []), data.get("inners", [])
        if not isinstance(args, list) or not isinstance(inners, list):
            raise _Malformed("'args' and 'inners' must be lists")
        return _join(name, [_arg(a, "args") for a in args], [_compose(i) for i in inners])
    if name == "gated":
        return _compose_gated(data)
    if name not in _SIMPLE:
        raise _Malformed(f"operator {name!r} has no named fields: give its 'args' (and 'inners') as lists")
    arg_names, inner_names = _SIMPLE[name]
    keys = [n.rstrip("?") for n in arg_names]
    _known(data, ("op", *keys, *inner_names))
    args = []
    for n, key in zip(arg_names, keys):
        if key in data:
            args.append(_arg(data[key], key))
        elif not n.endswith("?"):
            raise _Malformed(f"{name} needs '{key}'")
    missing = [n for n in inner_names if n not in data]
    if missing:
        raise _Malformed(f"{name} needs '{missing[0]}' (an operator, e.g. \"full\")")
    return _join(name, args, [_compose(data[n]) for n in inner_names])


def _compose_gated(data: Mapping[str, Any]) -> str:
    _known(data, _GATED_KEYS)
    kind = data.get("gate")
    if kind not in _GATE_VALUE:
        raise _Malformed(f"'gate' must be one of {', '.join(_GATE_VALUE)}, got {_show(kind)}")
    value_key = _GATE_VALUE[kind]
    for key in ("top", "threshold"):
        if key in data and key != value_key:
            needs = f"takes '{value_key}'" if value_key else "takes no value"
            raise _Malformed(f"the gate {kind} {needs}, not '{key}'")
    if value_key and value_key not in data:
        raise _Malformed(f"the gate {kind} needs '{value_key}'")
    args = [kind + _arg(data[value_key], value_key) if value_key else kind]
    reference = data.get("reference", "key")
    if reference not in _REFERENCES:
        raise _Malformed(f"'reference' must be key or running, got {_show(reference)}")
    if _REFERENCES[reference]:
        args.append("run")
    for key, letter in (("block", "b"), ("fraction", "f")):
        if key in data:
            args.append(letter + _arg(data[key], key))
    if "inner" not in data:
        raise _Malformed("gated needs 'inner' (the operator at the active positions, e.g. \"full\")")
    inners = [_compose(data["inner"])] + ([_compose(data["rest"])] if "rest" in data else [])
    return _join("gated", args, inners)


def _known(data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    unknown = [k for k in data if k not in keys]
    if unknown:
        raise _Malformed(f"unknown field {unknown[0]!r} for {data['op']}; its fields: {', '.join(keys)}")


def _arg(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Malformed(f"'{key}' must be a number, got {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Malformed(f"'{key}' must be finite, got {value}")
    return value if isinstance(value, str) else _text(value)


def _join(name: str, args: list[str], inners: list[str]) -> str:
    text = ":".join((name, *args))
    return f"{text}({','.join(inners)})" if inners else text


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
