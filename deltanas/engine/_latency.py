"""A latency cost model of delta frames, measured on this machine by the sparse engine.

A delta frame costs ``calibration x (fixed_ms + sum over conv layers l of (a_l + b_l x n_l))`` milliseconds,
``n_l`` the output positions layer ``l`` computes. Each conv layer's part is its node's time plus that of
the nodes after it up to the next convolution (its activation, an add, pooling...); ``fixed_ms`` is what
no conv layer accounts for (the nodes before the first one, the outputs' accumulation, the call itself).
:func:`profile_latency` times delta frames node by node (:meth:`NativeProgram.profile_frame`) over a sweep of
gate scales and fits ``a_l`` and ``b_l`` per layer; ``calibration`` maps the sum of per-node times onto
ordinary :meth:`SparseEngine.delta_frame` calls on the same frames (timing node by node adds a little per node).
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from tqdm.auto import tqdm

from .._io import atomic_write_text
from ..delta import DeltaModel
from ..errors import ConfigError
from ._engine import SparseEngine
from ._nodes import ConvNode

__all__ = ["DEFAULT_SCALES", "FrameParts", "LATENCY_FORMAT", "LatencyCheck", "LatencyModel", "LayerLatency",
           "attribute", "check_latency", "machine_name", "profile_latency", "teacher_name"]

LATENCY_FORMAT = "deltanas-latency"
LATENCY_VERSION = 1
# factors on the running gates' thresholds: from every change passing (0) to a few positions per layer
DEFAULT_SCALES = (0.0, 0.25, 0.5, 1.0, 2.0)


def machine_name() -> str:
    """The architecture and, where Linux says it, the CPU's model name (``platform.processor()`` is empty
    there)."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{platform.machine()} {model or ''}".strip()


def teacher_name(model: DeltaModel) -> str:
    """The registered name of ``model``'s teacher, else its architecture's, else the network's class."""
    if model.teacher is not None:
        return model.teacher.info.name
    return model.arch.teacher or type(model.net).__name__


# -- the model ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerLatency:
    """One conv layer's part of a delta frame: ``fixed_ms + ms_per_position x positions`` (before the model's
    calibration). ``positions``: its output positions (all of them: a dense update); ``r2`` and ``rel_error``
    (median |fit - measured| / measured) of the fit on the profiled frames (None where the part never varied
    or was never timed); ``samples`` frames fitted, ``max_positions`` the most positions one of them computed."""

    fixed_ms: float
    ms_per_position: float
    positions: int = 0
    r2: float | None = None
    rel_error: float | None = None
    samples: int = 0
    max_positions: int = 0

    def ms(self, positions: float) -> float:
        return self.fixed_ms + self.ms_per_position * positions


@dataclass(frozen=True)
class LatencyModel:
    """Milliseconds of a delta frame from the output positions each conv layer computes, for one teacher at
    one input size on one machine (``threads``, engine ``backend``, ``key_runtime``). ``key_ms``: the engine's
    median key frame (the dense runtime, filling the engine's state). ``report``: how it was measured (frames,
    scales, repeats, checks), plain JSON. Saved and loaded as JSON (:meth:`save`, :meth:`load`)."""

    teacher: str
    input_hw: tuple[int, int]
    threads: int
    backend: str
    key_runtime: str
    machine: str
    key_ms: float
    fixed_ms: float
    layers: Mapping[str, LayerLatency]
    calibration: float = 1.0
    report: Mapping[str, Any] = field(default_factory=dict)

    # -- predicting -------------------------------------------------------------------------------------
    def predict_ms(self, touched: Mapping[str, float]) -> float:
        """One delta frame whose conv layers compute ``touched[layer]`` output positions (a layer left out:
        none, it still costs its fixed part). An unknown layer name is refused."""
        unknown = sorted(set(touched) - set(self.layers))
        if unknown:
            raise ValueError(f"layers not in the latency model: {', '.join(unknown[:5])}"
                             + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
        total = self.fixed_ms + sum(layer.ms(float(touched.get(name, 0.0))) for name, layer in self.layers.items())
        return self.calibration * total

    def predict_frame_ms(self, touched: Mapping[str, float], k: "int | float") -> float:
        """Averaged over a key frame and ``k - 1`` delta frames that each compute ``touched``."""
        if not k >= 1:
            raise ValueError(f"the key-frame interval must be >= 1, got {k}")
        return (self.key_ms + (k - 1) * self.predict_ms(touched)) / k

    def dense_positions(self) -> dict[str, int]:
        """Every layer's output positions: what a delta frame where everything changed computes."""
        return {name: layer.positions for name, layer in self.layers.items()}

    def with_report(self, **entries: Any) -> "LatencyModel":
        return replace(self, report={**self.report, **entries})

    # -- files ------------------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        return {"format": LATENCY_FORMAT, "version": LATENCY_VERSION, "teacher": self.teacher,
                "input_hw": list(self.input_hw), "threads": self.threads, "backend": self.backend,
                "key_runtime": self.key_runtime, "machine": self.machine, "key_ms": self.key_ms,
                "fixed_ms": self.fixed_ms, "calibration": self.calibration,
                "layers": {name: asdict(layer) for name, layer in self.layers.items()},
                "report": dict(self.report)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "latency model") -> "LatencyModel":
        """Refuses anything but what :meth:`as_dict` writes, with one line (:class:`ConfigError`)."""
        def bad(what: str) -> ConfigError:
            return ConfigError(f"{where}: {what}")

        if not isinstance(data, Mapping) or data.get("format") != LATENCY_FORMAT:
            raise bad(f"not a latency model (expected format {LATENCY_FORMAT!r})")
        if data.get("version") != LATENCY_VERSION:
            raise bad(f"version {data.get('version')!r} is not {LATENCY_VERSION}; profile again")
        try:
            hw = data["input_hw"]
            if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0 for v in hw)):
                raise bad("input_hw must be [height, width]")
            if not isinstance(data["layers"], Mapping) or not data["layers"]:
                raise bad("layers must be an object of layers")
            layers = {str(name): LayerLatency(**{k: v for k, v in entry.items()})
                      for name, entry in data["layers"].items()}
            model = cls(teacher=str(data["teacher"]), input_hw=(hw[0], hw[1]), threads=int(data["threads"]),
                        backend=str(data["backend"]), key_runtime=str(data["key_runtime"]),
                        machine=str(data["machine"]), key_ms=_number(data["key_ms"]),
                        fixed_ms=_number(data["fixed_ms"]), calibration=_number(data["calibration"]),
                        layers=layers, report=dict(data.get("report") or {}))
        except KeyError as exc:
            raise bad(f"missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise bad(f"malformed ({exc})") from None
        for name, layer in layers.items():
            if not all(_finite(v) and v >= 0 for v in (layer.fixed_ms, layer.ms_per_position)):
                raise bad(f"layer {name}: fixed_ms and ms_per_position must be numbers >= 0")
            if not all(_count(v) for v in (layer.positions, layer.samples, layer.max_positions)):
                raise bad(f"layer {name}: positions, samples and max_positions must be integers >= 0")
            if not all(v is None or _finite(v) for v in (layer.r2, layer.rel_error)):
                raise bad(f"layer {name}: r2 and rel_error must be numbers or null")
        if not all(_finite(v) and v >= 0 for v in (model.key_ms, model.fixed_ms)) or not model.calibration > 0:
            raise bad("key_ms and fixed_ms must be numbers >= 0, calibration > 0")
        return model

    def save(self, path: "str | Path") -> Path:
        """Written atomically (readers never see half a file)."""
        return atomic_write_text(path, json.dumps(self.as_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: "str | Path", *, teacher: str | None = None,
             input_hw: tuple[int, int] | None = None) -> "LatencyModel":
        """Read a model :meth:`save` wrote; with ``teacher`` / ``input_hw``, refuse one profiled for another
        teacher or size (:class:`ConfigError`, one line, as for a missing or malformed file)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the latency model ({exc.strerror or exc})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not JSON ({exc})") from None
        model = cls.from_dict(data, str(path))
        hw = None if input_hw is None else (int(input_hw[0]), int(input_hw[1]))
        if (teacher is not None and model.teacher != teacher) or (hw is not None and model.input_hw != hw):
            want_t, want_hw = teacher or model.teacher, hw or model.input_hw
            raise ConfigError(f"{path}: profiled for {model.teacher} at {model.input_hw[0]}x{model.input_hw[1]}, "
                              f"not {want_t} at {want_hw[0]}x{want_hw[1]}; run deltanas profile --teacher {want_t} "
                              f"--size {want_hw[0]}x{want_hw[1]}")
        return model


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# -- attributing a profiled frame ----------------------------------------------------------------------------

class FrameParts(NamedTuple):
    """One delta frame's node times, by owner: ``fixed_s`` (the nodes before the first convolution),
    ``layers`` (each conv layer: its node and those after it up to the next conv, seconds) and
    ``positions`` (the output positions each conv layer computed)."""

    fixed_s: float
    layers: dict[str, float]
    positions: dict[str, int]

    @property
    def total_s(self) -> float:
        return self.fixed_s + sum(self.layers.values())


def attribute(records: Sequence[tuple[Any, int, int, float]]) -> FrameParts:
    """Split the records of :meth:`NativeProgram.profile_frame` (node, rows in, rows out, seconds), in program
    order: a conv node (not a Linear) owns itself and every node after it up to the next conv; the nodes
    before the first conv are fixed. The parts add up to the records' seconds."""
    fixed, layers, positions = 0.0, {}, {}
    owner: str | None = None
    for node, _, rows_out, seconds in records:
        if isinstance(node, ConvNode) and not node.is_linear:
            owner = node.name
            positions[owner] = positions.get(owner, 0) + int(rows_out)
        if owner is None:
            fixed += seconds
        else:
            layers[owner] = layers.get(owner, 0.0) + seconds
    return FrameParts(fixed, layers, positions)


# -- measuring -----------------------------------------------------------------------------------------------

class _Sample(NamedTuple):
    """One delta frame at one gate scale, medians over the repeats."""

    scale: float
    parts: FrameParts
    profiled_s: float  # wall time of the node-by-node call
    measured_s: float  # an ordinary delta_frame call


def _groups(clips: "torch.Tensor | Sequence[torch.Tensor]", k: int) -> list[list[torch.Tensor]]:
    if not isinstance(k, int) or k < 2:
        raise ConfigError(f"the key-frame interval must be an integer >= 2 (delta frames to time), got {k!r}")
    clips = [clips] if isinstance(clips, torch.Tensor) else list(clips)
    groups = []
    for clip in clips:
        if not isinstance(clip, torch.Tensor) or clip.ndim != 4 or not clip.is_floating_point():
            raise ConfigError("clips must be float tensors (T, C, H, W) in [0, 1]")
        frames = [f[None].contiguous().float() for f in clip]
        groups += [frames[s:s + k] for s in range(0, len(frames), k) if len(frames[s:s + k]) > 1]
    if not groups:
        raise ConfigError(f"no delta frames to time: every clip needs at least 2 frames (K = {k})")
    if len({tuple(g[0].shape[-2:]) for g in groups}) > 1:
        raise ConfigError("every clip must have the same frame size")
    return groups


def _check_args(scales: Sequence[float], repeats: int) -> tuple[float, ...]:
    scales = tuple(float(s) for s in scales)
    if not scales or not all(math.isfinite(s) and s >= 0 for s in scales):
        raise ConfigError(f"gate scales must be finite numbers >= 0, got {list(scales)}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be an integer >= 1, got {repeats!r}")
    return scales


def _engine_for(model: DeltaModel, engine: SparseEngine | None) -> SparseEngine:
    if engine is None:
        return SparseEngine(model, backend="native")
    if engine.model is not model:
        raise ValueError("the engine runs another model than the one given")
    if engine.backend != "native":
        raise ConfigError("latency is profiled on the native engine (SparseEngine(backend='native'))")
    return engine


@torch.no_grad()
def _measure(engine: SparseEngine, groups: list[list[torch.Tensor]], scales: tuple[float, ...], repeats: int,
             progress: bool, desc: str) -> tuple[list[_Sample], list[float]]:
    """Every delta frame of ``groups`` at every scale, ``repeats`` times: node by node, then ordinarily (each
    after the group's key frame). Returns the samples and the key frames' seconds."""
    hw = tuple(groups[0][0].shape[-2:])
    program = engine.prepare(hw).program
    before = engine.gate_scale
    records: dict[tuple[int, int, int], list] = {}
    walls: dict[tuple[int, int, int], list[float]] = {}
    ordinary: dict[tuple[int, int, int], list[float]] = {}
    keys: list[float] = []

    def key(x: torch.Tensor) -> None:
        start = time.perf_counter()
        engine.key_frame(x)
        keys.append(time.perf_counter() - start)

    engine.set_gate_scale(scales[0])  # warm-up: first calls touch fresh memory
    engine.key_frame(groups[0][0])
    for x in groups[0][1:]:
        engine.delta_frame(x)
    bar = tqdm(total=repeats * len(scales) * len(groups), desc=desc, unit="group", disable=not progress,
               leave=False)
    try:
        for _ in range(repeats):
            for s, scale in enumerate(scales):
                engine.set_gate_scale(scale)
                for g, group in enumerate(groups):
                    key(group[0])
                    for i, x in enumerate(group[1:]):
                        start = time.perf_counter()
                        rec = program.profile_frame(x)
                        walls.setdefault((s, g, i), []).append(time.perf_counter() - start)
                        records.setdefault((s, g, i), []).append(rec)
                    key(group[0])
                    for i, x in enumerate(group[1:]):
                        start = time.perf_counter()
                        engine.delta_frame(x)
                        ordinary.setdefault((s, g, i), []).append(time.perf_counter() - start)
                    bar.update()
    finally:
        bar.close()
        engine.set_gate_scale(before)
    samples = []
    for where, runs in records.items():
        first = runs[0]  # the same frame from the same key frame: the same rows every repeat
        median = [(node, rin, rout, statistics.median(run[j][3] for run in runs))
                  for j, (node, rin, rout, _) in enumerate(first)]
        samples.append(_Sample(scales[where[0]], attribute(median), statistics.median(walls[where]),
                               statistics.median(ordinary[where])))
    return samples, keys


def _fit_line(x: Sequence[float], y: Sequence[float], w: Sequence[float] | None = None) -> tuple[float, float]:
    """Weighted least squares ``y = a + b x`` with a, b >= 0 (off the unconstrained optimum: the better edge)."""
    w = [1.0] * len(x) if w is None else list(w)
    sw = sum(w)
    if not x or sw <= 0:
        return 0.0, 0.0
    mx, my = sum(wi * u for wi, u in zip(w, x)) / sw, sum(wi * v for wi, v in zip(w, y)) / sw
    sxx = sum(wi * (u - mx) ** 2 for wi, u in zip(w, x))
    if sxx > 0:
        b = sum(wi * (u - mx) * (v - my) for wi, u, v in zip(w, x, y)) / sxx
        if b >= 0 and my - b * mx >= 0:
            return my - b * mx, b

    def sse(a: float, b: float) -> float:
        return sum(wi * (v - a - b * u) ** 2 for wi, u, v in zip(w, x, y))

    x2 = sum(wi * u * u for wi, u in zip(w, x))
    slope = max(sum(wi * u * v for wi, u, v in zip(w, x, y)) / x2, 0.0) if x2 > 0 else 0.0
    return min([(max(my, 0.0), 0.0), (0.0, slope)], key=lambda ab: sse(*ab))


def _fit_quality(x: Sequence[float], y: Sequence[float], a: float, b: float) -> tuple[float | None, float | None]:
    my = sum(y) / len(y)
    sst = sum((v - my) ** 2 for v in y)
    sse = sum((v - a - b * u) ** 2 for u, v in zip(x, y))
    errors = [abs(a + b * u - v) / v for u, v in zip(x, y) if v > 0]
    return (1.0 - sse / sst if sst > 0 else None), (statistics.median(errors) if errors else None)


def _errors(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    rel = sorted(abs(p - m) / m for p, m in zip(predicted, measured) if m > 0)
    return {"frames": len(rel), "median_error": statistics.median(rel) if rel else float("nan"),
            "worst_error": rel[-1] if rel else float("nan"),
            "mean_bias": statistics.fmean(p / m - 1 for p, m in zip(predicted, measured) if m > 0) if rel else 0.0}


def _touched(sample: _Sample) -> dict[str, int]:
    return dict(sample.parts.positions)


def profile_latency(model: DeltaModel, clips: "torch.Tensor | Sequence[torch.Tensor]", keyframe_interval: int,
                    scales: Sequence[float] = DEFAULT_SCALES, repeats: int = 3, *, engine: SparseEngine | None = None,
                    progress: bool = True) -> LatencyModel:
    """Measure ``model``'s delta frames on the native engine (``engine``, default a new one) and fit the
    :class:`LatencyModel`: every key-frame group of ``clips`` (float (T, 3, H, W) in [0, 1], one size; a key
    frame every ``keyframe_interval`` frames) at each gate scale (:meth:`SparseEngine.set_gate_scale`, so the
    computed positions sweep from nearly dense to sparse), ``repeats`` times, medians per frame. Per conv
    layer a non-negative least-squares line of its part against its output positions, weighted relatively
    (a sparse frame's error counts as much as a dense one's). Then ordinary delta frames against those
    predictions on the same frames, ``measured = offset + calibration x predicted`` (timing node by node adds
    a little per node; an ordinary frame has its own Python and accumulates the outputs), the offset added
    to ``fixed_ms``."""
    started = time.perf_counter()
    scales = _check_args(scales, repeats)
    groups = _groups(clips, keyframe_interval)
    engine = _engine_for(model, engine)
    hw = (int(groups[0][0].shape[-2]), int(groups[0][0].shape[-1]))
    samples, keys = _measure(engine, groups, scales, repeats, progress, "profile")
    graph = engine.prepare(hw).graph
    convs = [n for n in graph.nodes if isinstance(n, ConvNode) and not n.is_linear]
    # relative weights: a sparse frame's few milliseconds count as much as a dense frame's many
    weights = [1.0 / max(s.parts.total_s, 1e-9) ** 2 for s in samples]
    layers = {}
    for node in convs:
        x = [float(s.parts.positions.get(node.name, 0)) for s in samples]
        y = [1e3 * s.parts.layers.get(node.name, 0.0) for s in samples]
        a, b = _fit_line(x, y, weights)
        r2, rel = _fit_quality(x, y, a, b)
        timed = node.name in samples[0].parts.layers
        layers[node.name] = LayerLatency(a, b, node.geometry.out_h * node.geometry.out_w, r2 if timed else None,
                                         rel if timed else None, len(x) if timed else 0, int(max(x)))
    fixed = 1e3 * statistics.median(s.parts.fixed_s for s in samples)
    measured = [1e3 * s.measured_s for s in samples]
    raw = LatencyModel(teacher_name(model), hw, engine.threads or torch.get_num_threads(), engine.backend,
                       engine.key_runtime, machine_name(), 1e3 * statistics.median(keys), fixed, layers)
    # ordinary frames = offset + factor x the node-by-node prediction (relative weights); the offset (the
    # frame's own Python, the outputs' accumulation) joins fixed_ms
    predicted = [raw.predict_ms(_touched(s)) for s in samples]
    offset, factor = _fit_line(predicted, measured, [1.0 / m ** 2 for m in measured])
    if factor <= 0:
        offset, factor = 0.0, statistics.median(m / p for m, p in zip(measured, predicted))
    fitted = replace(raw, fixed_ms=fixed + offset / factor, calibration=factor)
    totals = [s.parts.total_s for s in samples]
    report = {
        "keyframe_interval": keyframe_interval, "groups": len(groups), "delta_frames": len(samples) // len(scales),
        "scales": list(scales), "repeats": repeats,
        # how much of a node-by-node call its node times cover (the rest: the loop, the outputs' accumulation)
        "timed_share": statistics.median(t / s.profiled_s for t, s in zip(totals, samples)),
        # node-by-node time over ordinary delta frames
        "node_timing_ratio": statistics.median(t / s.measured_s for t, s in zip(totals, samples)),
        "fixed_profiled_ms": fixed,  # before the calibration's offset: the nodes before the first conv
        "conv_share": sum(sum(s.parts.layers.values()) for s in samples) / sum(totals),
        "measured_ms": {"median": statistics.median(measured), "min": min(measured), "max": max(measured)},
        "fit": _errors([fitted.predict_ms(_touched(s)) for s in samples], measured),
        "seconds": time.perf_counter() - started,
    }
    return fitted.with_report(profile=report)


class LatencyCheck(NamedTuple):
    """Predicted against measured ms of ordinary delta frames (frame by frame, medians over repeats)."""

    predicted_ms: tuple[float, ...]
    measured_ms: tuple[float, ...]
    scales: tuple[float, ...]  # the gate scale of each frame

    @property
    def median_error(self) -> float:
        return _errors(self.predicted_ms, self.measured_ms)["median_error"]

    @property
    def worst_error(self) -> float:
        return _errors(self.predicted_ms, self.measured_ms)["worst_error"]

    def as_dict(self) -> dict:
        return {**_errors(self.predicted_ms, self.measured_ms),
                "predicted_ms_median": statistics.median(self.predicted_ms),
                "measured_ms_median": statistics.median(self.measured_ms)}


def check_latency(latency: LatencyModel, model: DeltaModel, clips: "torch.Tensor | Sequence[torch.Tensor]",
                  keyframe_interval: int, scales: Sequence[float] = DEFAULT_SCALES, repeats: int = 3, *,
                  engine: SparseEngine | None = None, progress: bool = True) -> LatencyCheck:
    """``latency``'s prediction of each delta frame of ``clips`` (e.g. frames it was not fitted on), from the
    positions each layer computed there, against ordinary :meth:`SparseEngine.delta_frame` calls."""
    scales = _check_args(scales, repeats)
    groups = _groups(clips, keyframe_interval)
    hw = (int(groups[0][0].shape[-2]), int(groups[0][0].shape[-1]))
    if latency.teacher != teacher_name(model) or latency.input_hw != hw:
        raise ConfigError(f"the latency model is for {latency.teacher} at {latency.input_hw[0]}x{latency.input_hw[1]}, "
                          f"not {teacher_name(model)} at {hw[0]}x{hw[1]}")
    samples, _ = _measure(_engine_for(model, engine), groups, scales, repeats, progress, "check")
    return LatencyCheck(tuple(latency.predict_ms(_touched(s)) for s in samples),
                        tuple(1e3 * s.measured_s for s in samples), tuple(s.scale for s in samples))
