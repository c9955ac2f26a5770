"""Any user CNN as a teacher: ``create_teacher("my_pkg.models:build", weights="net.safetensors")``.

``module:function`` names a factory that takes no arguments and returns an ``nn.Module``. The module
takes RGB in [0, 1], shape (N, 3, H, W): put your own normalisation inside it, or pass ``mean`` /
``std`` (per channel, applied by :meth:`Teacher.normalize`). Two kinds of network are understood:

- a classifier, whose output is (N, classes): it is split with ``torch.fx`` at its last global
  average pooling; ``forward_features`` is everything before the pool (a 4-D map) and ``classify``
  everything after it (flatten, dropout, Linear...);
- a dense network (a UNet, a segmentation net), whose output is an (N, classes, H, W) map:
  ``forward_features`` is the whole network and ``classify`` the identity (each channel a class), so
  the dense logits are the network's class map and the global logits its spatial mean.

An export records the name and the weight file (``arch.json``'s ``teacher`` and ``teacher_weights``);
``input_size``, ``mean`` and ``std`` are not recorded: pass the teacher to ``load_model`` yourself when
you gave them.
"""

from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError, DeltaNASError
from ._base import Teacher, TeacherInfo
from ._fx_split import split_at_global_pool

__all__ = ["ModuleTeacher", "load_module_teacher", "resolve_factory", "load_state_file", "is_module_spec"]

DEFAULT_INPUT_SIZE = (224, 224)
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def is_module_spec(name: str) -> bool:
    """A teacher name with a ``:`` names a user factory (``module:function``), not a registered teacher."""
    return ":" in name


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class ModuleTeacher(Teacher):
    """A user network wrapped in the :class:`Teacher` contract.

    ``features`` maps normalised frames to the last feature map; ``pool`` and ``head`` are the
    classifier's own global pooling ((N, C, h, w) -> (N, C)) and the rest after it ((N, C) ->
    logits), both None for a dense network (``classify`` is then the identity on channels).
    """

    def __init__(self, info: TeacherInfo, features: nn.Module, pool: nn.Module | None = None,
                 head: nn.Module | None = None) -> None:
        super().__init__(info)
        if (pool is None) != (head is None):
            raise ValueError("a classifier teacher needs both pool and head; a dense one neither")
        self.features = features
        self.pool = pool
        self.head = head

    @property
    def is_dense(self) -> bool:
        return self.head is None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled if self.head is None else self.head(pooled)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        # the network's own pooling op, so that the logits equal the network's output bit for bit
        if self.pool is None or self.head is None:
            return super().logits_from_features(features)
        return self.head(self.pool(features))

    def dense_logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.head is None else super().dense_logits_from_features(features)


def resolve_factory(spec: str) -> Callable[[], Any]:
    """The callable named by ``module:function`` (``function`` may be dotted, e.g. ``Net.build``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ConfigError(f"teacher {spec!r}: a user model is named module:function, e.g. my_pkg.models:build")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"teacher {spec!r}: cannot import module {module_name!r} ({_first_line(exc)}); "
                          f"is it on PYTHONPATH?") from exc
    except Exception as exc:
        raise ConfigError(f"teacher {spec!r}: importing module {module_name!r} failed "
                          f"({type(exc).__name__}: {_first_line(exc)})") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"teacher {spec!r}: module {module_name!r} has no function {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"teacher {spec!r}: {attr!r} in module {module_name!r} is a "
                          f"{type(obj).__name__}, not a function returning an nn.Module")
    return obj


def load_state_file(path: "str | Path") -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file, or a ``.pt``/``.pth`` file read with
    ``weights_only=True`` (nothing but tensors is unpickled); anything else is refused."""
    path = Path(path)
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ConfigError(f"{path}: weights must be a {', '.join(WEIGHT_SUFFIXES)} file (a state dict)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such weights file")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise ConfigError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported (?:global: GLOBAL|class) ([\w.]+)", str(exc))
        what = f" (it pickles {found.group(1)})" if found else ""
        raise ConfigError(f"{path}: not a plain state dict: torch.load(weights_only=True) refuses it{what}; "
                          f"save model.state_dict() instead") from None
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable torch file ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{path}: holds a {type(obj).__name__}, not a state dict; save model.state_dict()")
    odd = [str(k) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if odd:
        raise ConfigError(f"{path}: not a state dict (entries {odd[:4]} are not tensors); "
                          f"save model.state_dict() (or that entry of the checkpoint)")
    return dict(obj)


def _load_weights(spec: str, net: nn.Module, path: Path) -> None:
    try:
        state = load_state_file(path)
    except ConfigError as exc:
        raise ConfigError(f"teacher {spec!r}: {exc}") from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = [f"{label} {keys[:3]}" + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("wrong shapes", wrong)) if keys]
    if problems:
        raise ConfigError(f"teacher {spec!r}: {path} does not fit the model: {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)


def _triple(value: Sequence[float] | None, default: float, what: str, spec: str) -> tuple[float, float, float]:
    if value is None:
        return (default,) * 3
    try:
        triple = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        triple = ()
    if len(triple) != 3 or (what == "std" and min(triple) <= 0):
        raise ConfigError(f"teacher {spec!r}: {what} must be three numbers (one per RGB channel)"
                          + (", all positive" if what == "std" else "") + f", got {value!r}")
    return triple  # type: ignore[return-value]


def _input_size(value: Sequence[int] | None, spec: str) -> tuple[int, int]:
    if value is None:
        return DEFAULT_INPUT_SIZE
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"teacher {spec!r}: input_size must be (height, width), got {value!r}")
    return int(value[0]), int(value[1])


@torch.no_grad()
def load_module_teacher(spec: str, weights: "str | Path | None" = None,
                        input_size: Sequence[int] | None = None, mean: Sequence[float] | None = None,
                        std: Sequence[float] | None = None) -> ModuleTeacher:
    """A :class:`ModuleTeacher` of the factory ``spec`` (``module:function``), with ``weights`` (a state
    dict file) loaded strictly. ``input_size`` (H, W; default 224x224) is the size it is probed, traced
    and converted at; ``mean``/``std`` normalise RGB in [0, 1] (default: none).

    Every user mistake (bad name, failing factory, not an nn.Module, weights that do not fit, an
    output that is neither logits nor a class map, a classifier without a global pool) is one
    :class:`ConfigError` line.
    """
    size = _input_size(input_size, spec)
    mean3, std3 = _triple(mean, 0.0, "mean", spec), _triple(std, 1.0, "std", spec)
    factory = resolve_factory(spec)
    try:
        net = factory()
    except DeltaNASError:
        raise
    except Exception as exc:
        raise ConfigError(f"teacher {spec!r}: the factory failed, called with no arguments "
                          f"({type(exc).__name__}: {_first_line(exc)})") from exc
    if not isinstance(net, nn.Module):
        raise ConfigError(f"teacher {spec!r}: the factory returned a {type(net).__name__}, not a torch.nn.Module")
    path = Path(weights).expanduser().resolve() if weights is not None else None
    if path is not None:
        _load_weights(spec, net, path)
    net.eval()
    probe = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    try:
        out = net(probe)
    except Exception as exc:
        raise ConfigError(f"teacher {spec!r}: the model fails on a (2, 3, {size[0]}, {size[1]}) frame "
                          f"({type(exc).__name__}: {_first_line(exc)}); pass input_size if it needs another") from exc
    if not isinstance(out, torch.Tensor) or out.ndim not in (2, 4) or not out.is_floating_point():
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"teacher {spec!r}: the model returns {shape}; a teacher returns (N, classes) logits "
                          f"or an (N, classes, H, W) class map, as one float tensor")
    info = TeacherInfo(
        name=spec, input_size=size, mean=mean3, std=std3, num_classes=int(out.shape[1]),
        source=f"{spec} " + (f"with weights {path}" if path is not None else "(the factory's own weights)"),
        weights=str(path) if path is not None else None,
    )
    if out.ndim == 4:
        return ModuleTeacher(info, net)
    split = split_at_global_pool(net, probe, spec)
    teacher = ModuleTeacher(info, split.features, split.pool, split.head).eval()
    features = teacher.forward_features(probe)
    again = teacher.logits_from_features(features)
    if features.ndim != 4 or again.shape != out.shape or not torch.allclose(again, out, rtol=1e-4, atol=1e-5):
        raise ConfigError(f"teacher {spec!r}: split at its global pool the model no longer computes its own "
                          f"output (the layers after the pool must not read anything else)")
    pooled = split.pool(features)
    try:
        shape = tuple(teacher.classify(torch.cat([pooled, pooled])).shape)
    except Exception:
        shape = None
    if shape != (2 * len(out), out.shape[1]):
        raise ConfigError(f"teacher {spec!r}: the classifier after the global pool must map (M, C) to "
                          f"(M, classes) for any M (deltanas applies it at every position)")
    return teacher
