"""What every analysis needs: the ClickHouse client, the database, the settings, a time window."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from analysis.errors import BadRequest
from meshscope.settings import ServerSettings

DEFAULT_LOOKBACK_S = 3600
TARGET_POINTS = 60
MAX_POINTS = 5000


@dataclass(slots=True)
class AnalysisContext:
    client: Client
    database: str
    settings: ServerSettings = field(default_factory=ServerSettings)

    @property
    def apdex_t_ms(self) -> float:
        return self.settings.apdex_threshold_ms


@dataclass(frozen=True, slots=True)
class Window:
    """``[start_s, end_s)`` in unix seconds, cut in steps of ``step_s``."""

    start_s: int
    end_s: int
    step_s: int

    @property
    def seconds(self) -> int:
        return self.end_s - self.start_s

    @classmethod
    def from_request(cls, start_ms: int | None = None, end_ms: int | None = None, step_s: int | None = None,
                     now_s: float | None = None) -> Window:
        """The API's convention: epoch ms, end defaults to now, start to end - 1 h, and the step to
        about 60 points (at least 10 s, the agents' interval)."""
        end_s = int((end_ms / 1000) if end_ms is not None else (now_s if now_s is not None else time.time()))
        start_s = int(start_ms / 1000) if start_ms is not None else end_s - DEFAULT_LOOKBACK_S
        if start_s >= end_s:
            raise BadRequest(f"start ({start_s * 1000}) must be before end ({end_s * 1000})")
        if step_s is None:
            step_s = max(10, -(-(end_s - start_s) // TARGET_POINTS))
        if step_s <= 0:
            raise BadRequest(f"step must be positive, got {step_s}")
        if (end_s - start_s) / step_s > MAX_POINTS:
            raise BadRequest(f"window/step gives more than {MAX_POINTS} points; use a larger step")
        return cls(start_s, end_s, int(step_s))
