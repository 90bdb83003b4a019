"""The agent's per-request and the collector's per-span modules run compiled (setup.py, Cython),
and their pure-Python form, what runs where no C compiler built them, passes the same tests."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pure_python import COMPILED_MODULES, ENABLED, ROOT

# the compiled modules' own tests, run again on the .py sources
PURE_PYTHON_TESTS = [
    "tests/test_compiled.py",
    "tests/agents/test_http_parser.py",
    "tests/agents/test_units.py",
    "tests/meshscope/test_sketch.py",
    "tests/meshscope/test_wire.py",
    "tests/collector/test_decoders.py",
    "tests/collector/test_recent.py",
    "tests/collector/test_writer_links.py",
]


def test_every_module_with_a_pxd_is_listed():
    assert set(COMPILED_MODULES) == {
        "agents.http_parser", "agents.http_observer", "agents.telemetry", "agents.tracecontext", "meshscope.sketch",
        "collector.decoders.normalize", "collector.links", "collector.recent", "meshscope.wire",
    }


@pytest.mark.parametrize("name", sorted(COMPILED_MODULES))
def test_module_runs_compiled_and_current(name):
    module = importlib.import_module(name)
    loaded = Path(module.__file__)
    if ENABLED:
        assert loaded == COMPILED_MODULES[name]
        return
    assert loaded.suffix == ".so", f"{name} runs as pure Python: its C build failed or never ran (make rebuilds it)"
    source = COMPILED_MODULES[name]
    newest_source = max(source.stat().st_mtime, source.with_suffix(".pxd").stat().st_mtime)
    assert loaded.stat().st_mtime >= newest_source, f"{loaded.name} is older than {name}'s sources: run make"


@pytest.mark.skipif(ENABLED, reason="already the pure-Python run")
def test_pure_python_modules_pass_their_tests():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PURE_PYTHON_TESTS],
        cwd=ROOT, env={**os.environ, "MESHSCOPE_PURE_PYTHON": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
