"""Settings: environment and arguments, one-line errors naming the variable, the listing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshscope.settings import AgentSettings, ServerSettings, SettingsError, WriterSettings, describe_all, load


def test_environment_and_argument_precedence(monkeypatch):
    monkeypatch.setenv("MESHSCOPE_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9093")
    monkeypatch.setenv("MESHSCOPE_RETENTION_DAYS", "30")
    settings = load(ServerSettings)
    assert settings.kafka_bootstrap == "broker-1:9092,broker-2:9093"
    assert settings.retention_days == 30
    assert load(ServerSettings, retention_days=7).retention_days == 7


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("MESHSCOPE_KAFKA_BOOTSTRAP", "no-port-here", "host:port"),
        ("MESHSCOPE_RETENTION_DAYS", "zero", "integer"),
        ("MESHSCOPE_RETENTION_DAYS", "0", "greater than or equal to 1"),
        ("MESHSCOPE_CLICKHOUSE_URL", "mysql://x", "chdb:///path"),
        ("MESHSCOPE_PORT", "70000", "less than or equal to 65535"),
        ("MESHSCOPE_CLICKHOUSE_DATABASE", "drop table;", "letters"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_variable(monkeypatch, variable, value, fragment):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load(ServerSettings)
    message = str(error.value)
    assert message.startswith(variable + ":")
    assert fragment in message
    assert "\n" not in message


def test_agent_sample_rate_bounds(monkeypatch):
    monkeypatch.setenv("MESHSCOPE_SAMPLE_RATE", "1.5")
    with pytest.raises(SettingsError, match="^MESHSCOPE_SAMPLE_RATE:"):
        load(AgentSettings)


def test_command_line_prints_the_error_and_exits_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "meshscope.cli", "migrate"],
        env={"MESHSCOPE_RETENTION_DAYS": "-3", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "meshscope migrate: configuration error: MESHSCOPE_RETENTION_DAYS: "
        "Input should be greater than or equal to 1 (got '-3')"
    ]


def test_every_variable_is_documented_once_and_listed_in_the_readme():
    rows = describe_all()
    variables = [variable for variable, _, _ in rows]
    assert len(variables) == len(set(variables))
    assert all(description for _, _, description in rows)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [variable for variable in variables if f"`{variable}`" not in readme]
    assert not missing, f"README.md does not list: {missing}"
    assert {"MESHSCOPE_KAFKA_BOOTSTRAP", "MESHSCOPE_CLICKHOUSE_URL"} <= set(variables)
    assert WriterSettings.model_fields.keys() <= ServerSettings.model_fields.keys() | {"metrics_port"}
