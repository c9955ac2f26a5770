"""Operator specs: a compact string per student operator that parses back exactly.

Grammar (whitespace ignored)::

    spec := term                       e.g.  full | zero | lowrank:0.25 | channel:4 | depthwise
    term := NAME (":" ARG)* ["(" spec ("," spec)* ")"]     e.g.  subsample:2(lowrank:0.25)
                                       or  gated:p0.25(full,lowrank:0.125)

``str(parse_op(s))`` is the canonical form; it serves as log label, cache key and sweep value.
``spec.to_fields()`` is the same spec as an object with named fields, which ``parse_op`` reads back
(see :mod:`deltanas.delta._fields`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ArchError
from ._fields import fields_text, spec_fields

__all__ = ["OpSpec", "parse_op"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARG = re.compile(r"[A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class OpSpec:
    """``inners`` are the inner specs in parentheses; ``inner`` is the first (None without any).

    A single inner spec may be given in place of the tuple: ``OpSpec("subsample", (), OpSpec("full"))``.
    """

    name: str
    args: tuple[str, ...] = ()
    inners: "tuple[OpSpec, ...]" = ()

    def __post_init__(self) -> None:
        inners = self.inners
        if inners is None:
            inners = ()
        elif isinstance(inners, OpSpec):
            inners = (inners,)
        object.__setattr__(self, "inners", tuple(inners))

    @property
    def inner(self) -> "OpSpec | None":
        return self.inners[0] if self.inners else None

    def __str__(self) -> str:
        text = ":".join((self.name, *self.args))
        return f"{text}({','.join(map(str, self.inners))})" if self.inners else text

    def to_fields(self) -> "dict[str, Any] | str":
        """The object form (named fields; the name alone for an operator without arguments)."""
        return spec_fields(self)


class _Parser:
    def __init__(self, text: str) -> None:
        self.original = text
        self.text = re.sub(r"\s+", "", text)
        self.pos = 0

    def fail(self, why: str) -> ArchError:
        return ArchError(f"bad operator spec {self.original!r}: {why}")

    def take(self, pattern: re.Pattern[str], what: str) -> str:
        match = pattern.match(self.text, self.pos)
        if not match:
            raise self.fail(f"expected {what} at position {self.pos}")
        self.pos = match.end()
        return match.group(0)

    def term(self) -> OpSpec:
        name = self.take(_NAME, "an operator name")
        args: list[str] = []
        while self.text.startswith(":", self.pos):
            self.pos += 1
            args.append(self.take(_ARG, "an argument"))
        inners: list[OpSpec] = []
        if self.text.startswith("(", self.pos):
            self.pos += 1
            inners.append(self.term())
            while self.text.startswith(",", self.pos):
                self.pos += 1
                inners.append(self.term())
            if not self.text.startswith(")", self.pos):
                raise self.fail("missing ')'")
            self.pos += 1
        return OpSpec(name, tuple(args), tuple(inners))

    def parse(self) -> OpSpec:
        if not self.text:
            raise self.fail("empty")
        spec = self.term()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos:]!r}")
        return spec


def parse_op(text: "str | OpSpec | Mapping[str, Any]") -> OpSpec:
    """Parse an operator spec string or its object form (an :class:`OpSpec` passes through unchanged)."""
    if isinstance(text, OpSpec):
        return text
    if isinstance(text, Mapping):
        text = fields_text(text)
    if not isinstance(text, str):
        raise ArchError(f"operator spec must be a string or an object, got {type(text).__name__}")
    return _Parser(text).parse()
