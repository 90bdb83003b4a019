"""Compiles the per-request and per-span modules with Cython: each module that has a ``.pxd`` beside it.

The ``.pxd`` declares C types for the classes and hot functions of the ``.py`` beside it; the
``.py`` stays the one source. The extensions are optional: without a C compiler the build goes on and the same ``.py``
files run, only slower. ``make`` rebuilds them when a source changes.
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

PACKAGES = ("agents", "collector", "meshscope", "storage")
COMPILED_MODULES = sorted(str(pxd.with_suffix(".py")) for package in PACKAGES for pxd in Path(package).rglob("*.pxd"))

setup(
    ext_modules=cythonize(
        [Extension(path[:-3].replace("/", "."), [path], optional=True) for path in COMPILED_MODULES],
        language_level=3,
        quiet=True,
    )
)
