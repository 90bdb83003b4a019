"""Response models of the analysis API: they put the contract of docs/analysis-api.md into the
OpenAPI document. Extra fields are allowed (additions stay backwards compatible)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Number = float | None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Red(_Open):
    rps: Number = Field(None, description="Requests per second over the window (or step).")
    count: Number = None
    errors: Number = None
    error_ratio: Number = Field(None, description="errors / count, 0..1.")
    p50: Number = Field(None, description="Milliseconds, from the merged distribution.")
    p90: Number = None
    p95: Number = None
    p99: Number = None
    max: Number = None
    apdex: Number = Field(None, description="Apdex with T = MESHSCOPE_APDEX_THRESHOLD_MS, 0..1.")


class ServiceRow(Red):
    service: str
    instances_up: Number = None
    instances_total: Number = None
    cpu: Number = Field(None, description="Mean of the instances' latest CPU use, fraction of one core.")
    memory_rss: Number = Field(None, description="Largest instance's latest RSS, bytes.")
    memory_limit: Number = None
    open_alerts: int = 0
    pending_recommendations: int = 0
    sparkline: list[float] = Field(default_factory=list, description="Requests per second per step.")
    source_of_data: str | None = Field(None, description="agent or spans.")


class SeriesPoint(Red):
    ts: int = Field(description="Step start, epoch ms.")
    key: str = Field(description='Endpoint or version; "" for group_by=none.')


class EndpointRow(_Open):
    endpoint: str
    method: str | None = None
    kind: str | None = None
    remote_service: str | None = None
    database: str | None = None
    count: Number = None
    errors: Number = None
    error_ratio: Number = None
    cumulative_ms: Number = None
    avg_ms: Number = None
    p50: Number = None
    p95: Number = None
    p99: Number = None
    max: Number = None
    rows: Number = None


class Node(_Open):
    id: str
    kind: str = Field(description="service, database or external.")
    rps: Number = None
    error_ratio: Number = None


class Edge(_Open):
    source: str
    target: str
    rps: Number = None
    count: Number = None
    errors: Number = None
    error_ratio: Number = None
    p50: Number = None
    p99: Number = None
    source_of_data: str = Field(description="agent or spans.")


class Topology(_Open):
    nodes: list[Node]
    edges: list[Edge]


class ResourcePoint(_Open):
    ts: int
    instance: str
    version: str | None = None
    cpu: Number = None
    memory_rss: Number = None
    memory_limit: Number = None
    up: Number = None
    probe_ms: Number = None


class AnomalyRow(_Open):
    service: str
    metric: str = Field(description="throughput, latency_p99 or error_ratio.")
    start: int = Field(description="Epoch ms.")
    end: int
    size: Number = Field(None, description="observed - baseline, in the metric's unit.")
    baseline: Number = None
    observed: Number = None
    score: Number = Field(None, description="Median robust z-score over the anomaly.")
    method: str


class RecommendationRow(_Open):
    service: str
    action: str = Field(description="scale_out, scale_in, scale_up or none.")
    direction: str = Field(description="horizontal or vertical.")
    current_instances: int
    recommended_instances: int
    cpu_request: Number = Field(None, description="Cores per instance.")
    memory_request: Number = Field(None, description="Bytes per instance.")
    confidence: float
    reasons: list[str]
    evidence: dict[str, Number]


class VersionRow(_Open):
    version: str
    count: Number = None
    error_ratio: Number = None
    p50: Number = None
    p99: Number = None


class VersionsAnswer(_Open):
    service: str
    versions: list[VersionRow]
    verdict: str = Field(description="better, worse, no_significant_difference or insufficient_data.")
    test: str
    confidence: Number = None
    baseline: str | None = None
    candidate: str | None = None


class ServicePage(_Open):
    """Everything the dashboard's service page shows, in one answer: each part is what its own
    endpoint answers, or null with the reason in ``errors``."""

    service: str
    services: list[str] = Field(default_factory=list, description="Every service in the window (for a picker).")
    summary: ServiceRow | None = Field(None, description="The service's row of /services (null: no traffic).")
    series: list[SeriesPoint] | None = Field(None, description="/series?group_by=none")
    anomalies: list[AnomalyRow] | None = Field(None, description="/anomalies")
    endpoints: list[EndpointRow] | None = Field(None, description="/endpoints?kind=http")
    sql: list[EndpointRow] | None = Field(None, description="/endpoints?kind=sql")
    resources: list[ResourcePoint] | None = Field(None, description="/resources")
    versions: VersionsAnswer | None = Field(None, description="/versions")
    errors: dict[str, str] = Field(default_factory=dict, description="Part -> why it is null.")


class RuleRow(_Open):
    name: str
    expr: str
    for_s: float
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    receivers: list[str]


class ActiveAlert(_Open):
    rule: str
    labels: dict[str, str]
    state: str = Field(description="pending or firing.")
    active_since: int = Field(description="Epoch ms.")
    value: Number = None


class AlertsAnswer(_Open):
    rules: list[RuleRow]
    alerts: list[ActiveAlert]


class HistoryRow(_Open):
    ts: int = Field(description="When the notification was queued, epoch ms.")
    rule: str
    status: str = Field(description="firing or resolved.")
    receiver: str
    attempts: int
    delivered: bool
    last_error: str | None = None
    payload: dict[str, Any] = Field(description="The Alertmanager v4 body.")
