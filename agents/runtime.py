"""The running agent: proxy listeners, recorder, exporter thread, health probe, signals.

``Agent(settings, listeners)``; ``await agent.start()`` binds the listeners and starts exporting;
``await agent.shutdown()`` (also on SIGTERM/SIGINT through ``serve()``) stops accepting, drains
connections for up to ``drain_timeout_s``, closes the current metrics interval and flushes
everything to the spool and, while the broker answers, to Kafka. Idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal

from agents.config import ListenerSpec
from agents.exporter import Exporter, KafkaPublisher, Publisher
from agents.health import probe_forever
from agents.proxy import Listener, Proxy
from agents.resources import ResourceSampler
from agents.spool import Spool
from agents.telemetry import Recorder
from meshscope.retention import Retention
from meshscope.settings import AgentSettings
from meshscope.topics import ensure_topics

logger = logging.getLogger(__name__)


class Agent:
    def __init__(self, settings: AgentSettings, listeners: list[ListenerSpec], *, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.specs = listeners
        self.recorder = Recorder(
            settings.service or "", settings.instance or "", settings.version,
            interval_s=settings.interval_s, sample_rate=settings.sample_rate, slow_ms=settings.slow_ms,
            max_endpoints=settings.max_endpoints, max_queued_spans=settings.max_queued_spans,
        )
        self.recorder.propagate = settings.propagate_context
        self.recorder.track_inbound = any(spec.direction == "outbound" for spec in listeners)
        if any(spec.protocol == "mysql" for spec in listeners):
            self._set_mysql_options(settings)
        self.listeners = [Listener(spec.context(settings), self.recorder) for spec in listeners]
        self.proxy = Proxy(self.listeners)
        inbound = [spec for spec in listeners if spec.direction == "inbound"]
        self.service_address = inbound[0].upstream if inbound else None
        port = int(self.service_address.rpartition(":")[2]) if self.service_address else None
        sampler = ResourceSampler(self.recorder, pid=settings.service_pid, port=port) if (settings.service_pid or port) else None
        spool_dir = settings.agent_spool_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", settings.service or "agent")
        spool = Spool(spool_dir, settings.agent_spool_max_bytes)
        self.exporter = Exporter(
            self.recorder,
            publisher or KafkaPublisher(
                settings.kafka_bootstrap, settings.kafka_send_timeout_s, client_id=f"meshscope-agent-{settings.service}",
                ensure_topics=lambda: ensure_topics(settings),
            ),
            spool,
            retention=Retention(spool, settings.kafka_bootstrap,
                                settings.consumer_group if settings.agent_spool_retain_until_committed else None),
            spans_topic=settings.spans_topic, metrics_topic=settings.metrics_topic, resources_topic=settings.resources_topic,
            flush_interval_s=settings.export_interval_s, resource_interval_s=settings.resource_interval_s,
            resource_sampler=sampler,
        )
        self._tasks: list[asyncio.Task] = []
        self._stopped: asyncio.Event | None = None
        self._shutdown_done = False

    def _set_mysql_options(self, settings: AgentSettings) -> None:
        # the MySQL observer reads its options from the telemetry (see agents/mysql/observer.py)
        try:
            from agents.mysql.observer import MySQLOptions
        except ImportError:
            return
        self.recorder.mysql_options = MySQLOptions(
            capture_params=settings.capture_sql_params, mask_literals=settings.mask_sql_literals, slow_ms=settings.slow_ms,
        )

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        await self.proxy.start()
        self.exporter.start()
        self._tasks.append(asyncio.create_task(self._rotate_forever()))
        if self.service_address:
            host, _, port = self.service_address.rpartition(":")
            self._tasks.append(asyncio.create_task(
                probe_forever(self.recorder, host.strip("[]"), int(port), self.settings.health_path, self.settings.health_interval_s)
            ))

    async def _rotate_forever(self) -> None:
        # closes each metrics interval shortly after its end even when no request arrives
        while True:
            await asyncio.sleep(0.5)
            self.recorder.rotate()

    async def shutdown(self) -> None:
        if self._shutdown_done:
            return
        self._shutdown_done = True
        logger.info("agent shutting down: draining connections")
        await self.proxy.drain(self.settings.drain_timeout_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.recorder.close_all()
        # the final flush blocks (Kafka acknowledgements or spool writes): off the loop
        await asyncio.get_running_loop().run_in_executor(None, self.exporter.stop)
        if self._stopped is not None:
            self._stopped.set()
        logger.info("agent stopped")

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.shutdown()
