"""Argument types and option groups shared by the verbs."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..teachers import Teacher

__all__ = ["size_type", "add_data_options", "add_engine_options", "add_run_options", "add_teacher_options",
           "data_config", "engine_from_args", "given_teacher", "print_json", "teacher_from_args"]


def size_type(text: str) -> tuple[int, int]:
    """``256x448`` -> (256, 448) (height x width)."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match or min(int(match.group(1)), int(match.group(2))) < 8:
        raise argparse.ArgumentTypeError(f"size must be HEIGHTxWIDTH, e.g. 256x448, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_teacher_options(p: argparse.ArgumentParser, note: str | None = None, weights: bool = True) -> None:
    """``--teacher NAME`` (a registered name or ``module:function``) and ``--teacher-weights FILE``
    (left out with ``weights=False``, where the verb can only rebuild a registered teacher by name)."""
    from ..teachers import list_teachers

    names = ", ".join(list_teachers())
    what = (f"a registered teacher ({names}) or a user model module:function (a factory returning an "
            f"nn.Module; the module must be importable, e.g. via PYTHONPATH)" if weights
            else f"a registered teacher ({names})")
    p.add_argument("--teacher", default="efficientnet_lite0", metavar="NAME",
                   help=f"{what} (default efficientnet_lite0)" + (f"; {note}" if note else ""))
    if weights:
        p.add_argument("--teacher-weights", metavar="FILE",
                       help="state dict of a module:function teacher (.safetensors, or .pt/.pth read with "
                            "weights_only=True)")


def teacher_from_args(args: argparse.Namespace) -> "Teacher":
    """The teacher named by ``--teacher``, with ``--teacher-weights`` when given."""
    from ..teachers import create_teacher

    weights = getattr(args, "teacher_weights", None)
    return create_teacher(args.teacher, **({"weights": weights} if weights is not None else {}))


def given_teacher(args: argparse.Namespace) -> "Teacher | None":
    """For pipelines that rebuild the teacher from the name in their config: the teacher built here
    when ``--teacher-weights`` is given (a name cannot carry them), else None."""
    return teacher_from_args(args) if getattr(args, "teacher_weights", None) is not None else None


def add_engine_options(p: argparse.ArgumentParser, reference: bool = False, fallback: bool = False) -> None:
    """``--engine`` (the sparse engine's backend; with ``reference``, also the dense-masked reference path),
    ``--keyframes`` (the dense runtime of key frames) and, with ``fallback``, ``--dense-fallback``."""
    choices = ["auto", "native", "torch"] + (["reference"] if reference else [])
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=choices, default="auto",
                   help="delta frames in the sparse engine: native (C++ kernels), torch (its pure-PyTorch path, "
                        "the same numbers), auto (native where built)"
                        + ("; reference: the dense-masked path that training and the search use" if reference
                           else "") + " (default auto)")
    g.add_argument("--keyframes", choices=["auto", "openvino", "onnxruntime", "torch"], default="auto",
                   help="runtime of the key frames (dense, float32): auto takes the fastest of OpenVINO and ONNX "
                        "Runtime (timed here), PyTorch without them")
    if fallback:
        g.add_argument("--dense-fallback", action="store_true",
                       help="run the teacher alone (its exact outputs, in the fastest float32 runtime) while delta "
                            "groups cost more per frame than it does here (a moving camera), probing now and then")


def fallback_from_args(args: argparse.Namespace):
    """The :class:`~deltanas.engine.DenseFallback` of ``--dense-fallback`` (None without it)."""
    from ..engine import DenseFallback

    return DenseFallback() if getattr(args, "dense_fallback", False) else None


def engine_from_args(args: argparse.Namespace, model):
    """The :class:`~deltanas.engine.SparseEngine` the engine options name for ``model`` (None: the reference
    path)."""
    from ..engine import SparseEngine

    if args.engine == "reference":
        return None
    return SparseEngine(model, backend=args.engine, keyframes=args.keyframes, threads=getattr(args, "threads", None))


def add_data_options(p: argparse.ArgumentParser, default: tuple[str, ...] = ("bundled",)) -> None:
    g = p.add_argument_group("footage")
    g.add_argument("--videos", nargs="+", default=list(default), metavar="SRC",
                   help="bundled clip names (bikes, bigbuckbunny, carphone: moving cameras), 'bundled' or "
                        "'moving' (those three), static-camera clips shipped in the package (bottle-detection, "
                        "asl-book), 'static' (both), 'shared', "
                        f"video files, frame folders or folders of videos (default: {' '.join(default)})")
    g.add_argument("--keyframe", type=int, default=8, metavar="K", help="keyframe interval (default 8)")
    g.add_argument("--eval-size", type=size_type, default=(256, 448), metavar="HxW",
                   help="held-out frames are resized (cover + centre crop) to this (default 256x448)")
    g.add_argument("--max-frames", type=int, default=300, help="frames read per clip (default 300)")
    g.add_argument("--frame-size", type=size_type, default=(288, 512), metavar="HxW",
                   help="training frames are decoded at this size (default 288x512)")
    g.add_argument("--crop", type=size_type, default=(192, 320), metavar="HxW",
                   help="random training crops of that size (default 192x320)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--name", help="run folder name under --runs-dir (default: derived from the verb)")
    g.add_argument("--runs-dir", default="runs", help="where run folders go (default ./runs)")
    g.add_argument("--resume", action="store_true", help="continue the run folder --name from its checkpoint")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def data_config(args: argparse.Namespace, **overrides: Any):
    from ..training import DataConfig

    values = dict(videos=tuple(args.videos), keyframe_interval=args.keyframe, eval_size=args.eval_size,
                  max_frames=args.max_frames, frame_size=args.frame_size, crop=args.crop)
    values.update(overrides)
    try:
        return DataConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
