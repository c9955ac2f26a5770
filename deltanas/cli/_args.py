"""Argument types and option groups shared by the verbs."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from ..errors import ConfigError

__all__ = ["size_type", "add_data_options", "add_run_options", "data_config", "print_json"]


def size_type(text: str) -> tuple[int, int]:
    """``256x448`` -> (256, 448) (height x width)."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match or min(int(match.group(1)), int(match.group(2))) < 8:
        raise argparse.ArgumentTypeError(f"size must be HEIGHTxWIDTH, e.g. 256x448, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("footage")
    g.add_argument("--videos", nargs="+", default=["bundled"], metavar="SRC",
                   help="bundled clip names (bikes, bigbuckbunny, carphone), 'bundled', 'shared', "
                        "video files, frame folders or folders of videos (default: bundled)")
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
