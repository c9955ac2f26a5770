"""Teacher registry: ``create_teacher(name)``, ``list_teachers()``, ``@register_teacher``.

A name with a ``:`` is not looked up: ``module:function`` names a user factory (see ``_module.py``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from ..errors import ConfigError
from ._base import Teacher
from ._module import is_module_spec, load_module_teacher

__all__ = ["TeacherRegistry", "register_teacher", "create_teacher", "list_teachers", "DEFAULT_REGISTRY"]

TeacherFactory = Callable[..., Teacher]


@dataclass
class TeacherRegistry:
    """Maps names to factories. One default instance serves the package; tests may make their own."""

    factories: dict[str, TeacherFactory] = field(default_factory=dict)

    def register(self, name: str, factory: TeacherFactory) -> TeacherFactory:
        if is_module_spec(name):
            raise ValueError(f"teacher name {name!r} has a ':', which names a user model (module:function)")
        if name in self.factories:
            raise ValueError(f"teacher {name!r} is registered already")
        self.factories[name] = factory
        return factory

    def names(self) -> list[str]:
        return sorted(self.factories)

    def create(self, name: str, **kwargs) -> Teacher:
        """A registered teacher, or for ``module:function`` a user model wrapped as a teacher
        (keyword arguments ``weights``, ``input_size``, ``mean``, ``std``); frozen, in eval mode."""
        factory = partial(load_module_teacher, name) if is_module_spec(name) else self.factories.get(name)
        if factory is None:
            raise ConfigError(f"unknown teacher {name!r}; available: {', '.join(self.names())}")
        accepted = [p for p in inspect.signature(factory).parameters if not p.startswith("_")]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(
                f"teacher {name!r} takes no argument(s) {unknown}; it takes {sorted(accepted)}"
            )
        teacher = factory(**kwargs)
        for p in teacher.parameters():  # teachers stay frozen: students learn, teachers don't
            p.requires_grad_(False)
        return teacher.eval()


DEFAULT_REGISTRY = TeacherRegistry()


def register_teacher(name: str) -> Callable[[TeacherFactory], TeacherFactory]:
    def wrap(factory: TeacherFactory) -> TeacherFactory:
        return DEFAULT_REGISTRY.register(name, factory)

    return wrap


def create_teacher(name: str = "efficientnet_lite0", **kwargs) -> Teacher:
    """Build a registered teacher with its real weights, frozen and in eval mode; or, for a name
    ``module:function``, wrap a user network (see :func:`~deltanas.teachers.load_module_teacher`)."""
    return DEFAULT_REGISTRY.create(name, **kwargs)


def list_teachers() -> list[str]:
    return DEFAULT_REGISTRY.names()
