"""`meshscope serve` refuses to start on a broken alert rule file, with one line naming it."""

from __future__ import annotations

import subprocess
import sys


def test_bad_rule_file_stops_serve_at_start(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: slow\n    expr: p99(\n")
    result = subprocess.run(
        [sys.executable, "-m", "meshscope.cli", "serve"],
        env={"PATH": "/usr/bin:/bin", "MESHSCOPE_ALERT_RULES": str(rules), "MESHSCOPE_PORT": "0",
             "MESHSCOPE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}", "MESHSCOPE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
             "MESHSCOPE_SPOOL_DIR": str(tmp_path / "spool"), "MESHSCOPE_DASHBOARD": "false"},
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("meshscope serve: configuration error: MESHSCOPE_ALERT_RULES: ")
    assert f"{rules}:" in last
