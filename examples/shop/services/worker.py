"""queue-worker: drains the queue in batches and "dispatches" each shipment. Its HTTP port serves
only health and admin endpoints; its traffic is outbound, to the queue.

``POST /admin/pause`` returns once no take is in flight and none will start until
``POST /admin/resume``, so a test can read the queue's counters while they stand still.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from examples.shop import service, topology
from examples.shop.errors import DependencyError

logger = logging.getLogger(__name__)

SERVICE = topology.BY_NAME["queue-worker"]
BATCH = 10


class Worker:
    def __init__(self, shop: service.Shop, poll_interval: float) -> None:
        self.shop = shop
        self.poll_interval = poll_interval
        self.running = asyncio.Event()
        self.running.set()
        self.busy = asyncio.Lock()
        self.counts = {"processed": 0, "polls": 0, "paused": False}
        shop.stats.extra["worker"] = self.counts
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="queue-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def pause(self) -> None:
        self.running.clear()
        self.counts["paused"] = True
        async with self.busy:  # wait for the batch in flight
            pass

    def resume(self) -> None:
        self.running.set()
        self.counts["paused"] = False

    async def _loop(self) -> None:
        while True:
            await self.running.wait()
            async with self.busy:
                if not self.running.is_set():
                    continue
                try:
                    taken = await self._take_batch()
                except DependencyError as exc:
                    logger.warning("queue unavailable: %s", exc)
                    taken = 0
                except Exception:
                    logger.exception("take failed")
                    taken = 0
            if taken == 0:
                await asyncio.sleep(self.poll_interval)

    async def _take_batch(self) -> int:
        self.counts["polls"] += 1
        response = await self.shop.dependencies.call("queue", "POST", "/messages/take", params={"max": BATCH})
        messages = response.json()["messages"]
        for message in messages:
            logger.debug("dispatched shipment %s", message["body"].get("shipment_id"))
        self.counts["processed"] += len(messages)
        return len(messages)


def build_app(shop: service.Shop, poll_interval: float = 0.2) -> FastAPI:
    worker = Worker(shop, poll_interval)

    async def start(app: FastAPI) -> None:
        worker.start()

    async def stop(app: FastAPI) -> None:
        await worker.stop()

    app = service.create_app(shop, on_startup=start, on_shutdown=stop)

    @app.post("/admin/pause")
    async def pause() -> dict:
        await worker.pause()
        return worker.counts

    @app.post("/admin/resume")
    async def resume() -> dict:
        worker.resume()
        return worker.counts

    return app


def main(argv: list[str] | None = None) -> None:
    parser = service.argument_parser(SERVICE)
    parser.add_argument("--poll-ms", type=int, default=200, help="pause between takes when the queue is empty")
    args = parser.parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args), args.poll_ms / 1000), args)


if __name__ == "__main__":
    main()
