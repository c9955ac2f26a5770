"""Build the engine's native kernels (C++, OpenMP; the BLAS comes from the installed torch at run time).

Everything else about the package is in pyproject.toml. The extension is optional: without a compiler the
install goes on and the engine runs its pure-PyTorch path (``deltanas info`` says which one runs).
"""

import platform

from setuptools import Extension, setup


def native_kernels() -> Extension:
    flags = ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags += ["-mavx2", "-mfma"]  # deltanas/engine/_native.py checks the CPU before loading
    return Extension("deltanas.engine._kernels", ["deltanas/engine/native/kernels.cpp"], language="c++",
                     extra_compile_args=flags, extra_link_args=["-fopenmp"], optional=True)


setup(ext_modules=[native_kernels()])
