"""The pass-through observer: plain TCP (and any protocol without a decoder) forwarded untouched."""

from __future__ import annotations

from agents.observer import ListenerContext, Telemetry


class PassThroughObserver:
    __slots__ = ()

    def __init__(self, context: ListenerContext | None = None, telemetry: Telemetry | None = None) -> None:
        pass

    def client_data(self, data: bytes, now_ns: int) -> bytes:
        return data

    def server_data(self, data: bytes, now_ns: int) -> None:
        return None

    def closed(self, now_ns: int) -> None:
        return None
