"""The native kernels are part of the install: a build that failed quietly must not pass for a working one."""

from __future__ import annotations

import os
import platform

import pytest

from deltanas.engine import native_available, native_unavailable_reason


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="built and checked on x86-64")
@pytest.mark.skipif(bool(os.environ.get("DELTANAS_ALLOW_NO_NATIVE")), reason="DELTANAS_ALLOW_NO_NATIVE is set")
def test_the_native_engine_is_built_and_loads():
    assert native_available(), native_unavailable_reason()
