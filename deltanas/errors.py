"""The error family that deltanas raises for bad user input.

The command line turns any :class:`DeltaNASError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

__all__ = [
    "DeltaNASError",
    "VideoError",
    "ArchError",
    "ConfigError",
    "TrainingError",
]


class DeltaNASError(Exception):
    """Base class of every error caused by user input or environment (not by a bug)."""


class VideoError(DeltaNASError):
    """A video or frame folder is missing, empty, corrupt or unreadable."""


class ArchError(DeltaNASError):
    """An architecture (layer -> operator mapping) is malformed or does not fit the teacher."""


class ConfigError(DeltaNASError):
    """A YAML/JSON file, a command-line value or a search space is malformed."""


class TrainingError(DeltaNASError):
    """Training cannot go on (NaN loss, diverged, nothing to train)."""
