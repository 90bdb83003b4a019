"""Regenerates the configuration table in README.md from meshscope.settings (run after adding a setting)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

readme = Path(__file__).parents[1] / "README.md"
table = subprocess.run([sys.executable, "-m", "meshscope.cli", "config", "--markdown"], capture_output=True, text=True, check=True).stdout
text = readme.read_text()
text = re.sub(r"(<!-- settings:begin -->\n).*?(<!-- settings:end -->)", lambda m: m[1] + table + m[2], text, flags=re.S)
readme.write_text(text)
