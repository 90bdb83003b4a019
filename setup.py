"""Compiles the agent's per-request modules with Cython: each module that has a ``.pxd`` beside it.

The ``.pxd`` declares C types for the classes of the ``.py`` beside it; the ``.py`` stays the one
source. The extensions are optional: without a C compiler the build goes on and the same ``.py``
files run, only slower. ``make`` rebuilds them when a source changes.
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILED_MODULES = sorted(str(pxd.with_suffix(".py")) for pxd in Path().glob("*/*.pxd"))

setup(
    ext_modules=cythonize(
        [Extension(path[:-3].replace("/", "."), [path], optional=True) for path in COMPILED_MODULES],
        language_level=3,
        quiet=True,
    )
)
