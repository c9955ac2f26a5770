"""What a regular (non-editable) install gets: the wheel carries the built-in search spaces and the
static-camera clips with their notice and licence; the checkout keeps one copy of the spaces."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deltanas.delta import builtin_search_spaces
from deltanas.video import static_clips

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "deltanas" / "search_spaces"
CLIP_DATA = ROOT / "deltanas" / "video" / "data"


def test_the_top_level_search_spaces_are_the_packaged_ones() -> None:
    """``search_spaces/`` (where users read and edit them) is a link to the package's folder; a copy in
    its place (a checkout without symbolic links) must at least hold the same files."""
    top = ROOT / "search_spaces"
    files = {p.name: p.read_bytes() for p in SPACES.glob("*.yaml")}
    assert {p.name: p.read_bytes() for p in top.glob("*.yaml")} == files and files
    assert set(builtin_search_spaces()) >= {"default", "skipconv"}
    assert all(p.parent == SPACES for p in builtin_search_spaces().values())


@pytest.mark.slow
def test_the_wheel_carries_the_spaces_and_the_clips(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info where it runs
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "deltanas", source / "deltanas", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", str(source), "-w", str(tmp_path / "dist")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("deltanas-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for path in [*SPACES.glob("*.yaml"), *static_clips().values(), CLIP_DATA / "NOTICE.md",
                     CLIP_DATA / "LICENSE-CC-BY-4.0.txt"]:
            inside = path.relative_to(ROOT).as_posix()
            assert inside in names, f"{inside} is not in {wheel.name}"
            assert z.read(inside) == path.read_bytes()
