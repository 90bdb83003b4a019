"""The compiled modules run from their ``.py`` sources: what a machine without a C compiler runs.

``MESHSCOPE_PURE_PYTHON=1`` makes the tests' conftest install ``SourceFinder`` before anything is
imported; ``tests/test_compiled.py`` runs the modules' own tests that way.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# module name -> its .py source, for every module setup.py compiles (those with a .pxd)
COMPILED_MODULES = {".".join(pxd.relative_to(ROOT).with_suffix("").parts): pxd.with_suffix(".py")
                    for package in ("agents", "collector", "meshscope", "storage") for pxd in (ROOT / package).rglob("*.pxd")}
ENABLED = os.environ.get("MESHSCOPE_PURE_PYTHON", "") not in ("", "0")


class SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extensions."""

    def find_spec(self, name, path, target=None):
        source = COMPILED_MODULES.get(name)
        return importlib.util.spec_from_file_location(name, source) if source is not None else None


def install() -> None:
    sys.meta_path.insert(0, SourceFinder())
