"""The ``deltanas`` command: thin verbs over the public API.

Any :class:`~deltanas.errors.DeltaNASError` becomes one line on stderr and exit status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import DeltaNASError
from . import _bench, _condense, _core, _profile, _search, _sweep

__all__ = ["main", "build_parser"]

_VERB_MODULES = (_core, _search, _sweep, _bench, _profile, _condense)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deltanas",
        description="Delta distillation for video CNNs: cheap per-layer students, searched under a MAC budget.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in _VERB_MODULES:
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except DeltaNASError as exc:
        if args.debug:
            raise
        print(f"deltanas {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deltanas {args.verb}: interrupted (a run folder resumes with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
