"""Configuration: one pydantic-settings class per process, every variable documented here once.

Precedence is argument > environment (``MESHSCOPE_*``) > default. ``load()`` turns a validation
failure into a one-line ``SettingsError`` naming the variable, which the command line prints
before exiting with status 2. ``meshscope config`` lists every variable (the README table is
checked against it by a test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "MESHSCOPE_"
DEFAULT_DATA_DIR = Path(".meshscope")


class SettingsError(ValueError):
    """A configuration value that cannot work; the message is one line naming the variable."""


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)


class KafkaMixin(_Base):
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port (any Kafka-protocol broker)."
    )
    spans_topic: str = Field("meshscope.spans", description="Topic for spans (OTLP TracesData of whole traces of one partition, keyed by a trace id).")
    metrics_topic: str = Field("meshscope.metrics", description="Topic for latency distributions and counters (OTLP MetricsData).")
    resources_topic: str = Field("meshscope.resources", description="Topic for CPU, memory and health samples (OTLP MetricsData).")
    consumer_group: str = Field(
        "meshscope-writer",
        description="Kafka consumer group shared by all writers (agents and the collector keep what they spooled until this group has committed it).",
    )
    kafka_topic_partitions: int = Field(4, ge=1, le=1024, description="Partitions of the topics meshscope creates when they do not exist (writers in one group share them); the collector and the agents create them.")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value


class StorageMixin(_Base):
    clickhouse_url: str = Field(
        f"chdb://{(DEFAULT_DATA_DIR / 'clickhouse').resolve()}",
        description="ClickHouse: `chdb:///abs/dir` for the embedded engine or `http(s)://user:pass@host:8123` for a server.",
    )
    clickhouse_database: str = Field("meshscope", description="ClickHouse database holding meshscope's tables.")
    retention_days: int = Field(15, ge=1, le=20000, description="Days spans, metrics and samples are kept (TTL, whole parts dropped).")

    @field_validator("clickhouse_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError(f"expected chdb:///path or http(s)://host:port, got {value!r}")
        return value

    @field_validator("clickhouse_database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError(f"expected letters, digits and underscores, got {value!r}")
        return value


class WriterMixin(KafkaMixin, StorageMixin):
    writer_batch_size: int = Field(20000, ge=1, description="Rows per ClickHouse insert (a batch is flushed when full).")
    writer_batch_ms: int = Field(1000, ge=10, description="Longest a row waits before its batch is flushed, in ms (a batch is flushed sooner when the writer has caught up with the topics).")
    kafka_session_timeout_ms: int = Field(6000, ge=1000, description="Consumer group session timeout in ms.")
    kafka_heartbeat_ms: int = Field(2000, ge=100, description="Consumer group heartbeat interval in ms.")


class WriterSettings(WriterMixin):
    """`meshscope writer`: Kafka -> ClickHouse alone, for scale-out (several share one group)."""

    metrics_port: int = Field(9412, ge=0, le=65535, description="Port of the writer's /metrics endpoint when run alone (0 = off).")


class ServerSettings(WriterMixin):
    """`meshscope serve`: ingestion, writer, query API, analysis and dashboard in one process."""

    host: str = Field("127.0.0.1", description="Address the API and dashboard listen on.")
    port: int = Field(9411, ge=0, le=65535, description="Port of the API (Zipkin's 9411 by default) and dashboard.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest accepted request body, after decompression (413 beyond).")
    spool_dir: Path = Field(DEFAULT_DATA_DIR / "spool" / "collector", description="Directory of the collector's spool for spans accepted while Kafka is away.")
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="Spool size limit; beyond it ingestion answers 503 with Retry-After.")
    auth_token: str | None = Field(None, description="Bearer token required on ingestion and query when set (off by default).")
    spool_retain_until_committed: bool = Field(True, description="Keep spooled spans until the writers' consumer group has committed them, so a broker that loses acknowledged messages loses nothing (off: until Kafka acknowledges them).")
    query_lookback_ms: int = Field(86400000, ge=1, description="Default `lookback` of the Zipkin query API in ms (Zipkin's QUERY_LOOKBACK).")
    run_writer: bool = Field(True, description="Run the Kafka -> ClickHouse writer inside `serve`.")
    dashboard: bool = Field(True, description="Serve the dashboard at /dashboard/ next to the API.")
    alert_rules: Path | None = Field(None, description="YAML file of alert rules (none: alerting off).")
    alert_interval_s: float = Field(15.0, gt=0, description="Seconds between alert rule evaluations.")
    alert_state_path: Path = Field(DEFAULT_DATA_DIR / "alerts.sqlite", description="SQLite file of alert states and the webhook outbox (survives restarts; one server owns it).")
    alert_external_url: str | None = Field(None, description="Base URL put in alert notifications' links (default: http://host:port of this server).")
    apdex_threshold_ms: float = Field(300.0, gt=0, description="Apdex T: requests under T are satisfied, under 4T tolerated.")
    services_file: Path | None = Field(None, description="YAML describing services (stateful, latency objective, limits) for recommendations.")


class AgentSettings(KafkaMixin):
    """`meshscope agent`: the sidecar beside one service instance."""

    service: str | None = Field(None, description="Name of the service this agent sits beside.")
    instance: str | None = Field(None, description="Instance id (default: hostname:pid of the agent).")
    version: str = Field("", description="Version label of the service instance (for side-by-side releases).")
    agent_config: Path | None = Field(None, description="YAML file with the agent's listeners and options.")
    inbound: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Inbound listeners `LISTEN=UPSTREAM[/PROTOCOL]` (e.g. `0.0.0.0:8080=127.0.0.1:18080/http`), comma-separated; SERVER spans.",
    )
    outbound: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Outbound listeners `NAME=LISTEN=UPSTREAM[/PROTOCOL]` (NAME: the dependency), comma-separated; CLIENT spans.",
    )
    agent_spool_dir: Path = Field(DEFAULT_DATA_DIR / "spool" / "agent", description="Directory of the agent's on-disk telemetry spool (a subdirectory per service).")
    agent_spool_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Agent spool limit; beyond it the oldest telemetry Kafka acknowledged goes first, then new telemetry is dropped and counted.")
    agent_spool_retain_until_committed: bool = Field(True, description="Keep spooled telemetry until the writers' consumer group has committed it, so a broker that loses acknowledged messages loses nothing (off: until Kafka acknowledges it).")
    sample_rate: float = Field(
        0.01, ge=0.0, le=1.0,
        description="Share of traces sampled for spans when the caller did not decide (Istio's default 1%); errors and slow requests always are; metrics count every request.",
    )
    slow_ms: float = Field(1000.0, gt=0, description="Requests slower than this are always traced.")
    interval_s: int = Field(10, ge=1, le=3600, description="Metrics interval in seconds.")
    max_endpoints: int = Field(500, ge=1, description="Distinct endpoints per listener before others count as `OTHER`.")
    health_interval_s: float = Field(5.0, gt=0, description="Seconds between health probes of the service.")
    health_path: str | None = Field(None, description="HTTP path to probe (default: a TCP connect).")
    service_pid: int | None = Field(None, description="PID of the service process for CPU/memory (default: found by its port).")
    capture_sql_params: bool = Field(False, description="Put bound prepared-statement values in SQL spans.")
    mask_sql_literals: bool = Field(True, description="Mask literals in captured SQL text.")
    propagate_context: bool = Field(True, description="Set trace-context headers on forwarded requests (false: the agent never changes a byte).")
    max_queued_spans: int = Field(20000, ge=1, description="Finished spans held in memory for the exporter; beyond, spans are dropped and counted.")
    export_interval_s: float = Field(1.0, gt=0, description="Seconds between exporter rounds (spans and closed intervals are published each round).")
    resource_interval_s: float = Field(10.0, gt=0, description="Seconds between CPU/memory samples of the service and telemetry counters.")
    kafka_send_timeout_s: float = Field(5.0, gt=0, description="Longest the exporter waits for Kafka acknowledgements before it retries later (the telemetry stays spooled).")
    drain_timeout_s: float = Field(10.0, ge=0, description="On SIGTERM, seconds to let connections finish before closing them.")

    @field_validator("inbound", "outbound", mode="before")
    @classmethod
    def _split_listeners(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value


class DemoSettings(KafkaMixin, StorageMixin):
    """`meshscope demo`: broker, server, shop services with agents and load, on one machine."""

    demo_dir: Path = Field(DEFAULT_DATA_DIR / "demo", description="Working directory of the demo (store, spools, logs).")
    demo_port: int = Field(9411, ge=1, le=65535, description="Port of the demo's API and dashboard.")
    demo_duration_s: float = Field(0, ge=0, description="Stop the demo after this many seconds (0 = run until Ctrl-C).")


SETTINGS_CLASSES: tuple[type[_Base], ...] = (ServerSettings, WriterSettings, AgentSettings, DemoSettings)
S = TypeVar("S", bound=_Base)


def load(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from arguments over the environment; raise SettingsError with one line."""
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{name}: {message} (got {error.get('input')!r})") from None


def describe_all() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting of every process, each variable once."""
    rows: dict[str, tuple[str, str, str]] = {}
    for cls in SETTINGS_CLASSES:
        for name, info in cls.model_fields.items():
            variable = ENV_PREFIX + name.upper()
            default = "unset" if info.default is None else str(info.default).replace(str(Path.cwd()), ".")
            rows.setdefault(variable, (variable, default, info.description or ""))
    return sorted(rows.values())
