"""queue: a small in-memory message queue over HTTP (the shop's RabbitMQ): shipping enqueues,
the queue-worker takes batches. Bounded: answers 503 when full. Calls no other service."""

from __future__ import annotations

import collections
import itertools

from fastapi import Body, FastAPI, HTTPException, Query

from examples.shop import service, topology

SERVICE = topology.BY_NAME["queue"]
CAPACITY = 10_000
MAX_BATCH = 100


def build_app(shop: service.Shop, capacity: int = CAPACITY) -> FastAPI:
    app = service.create_app(shop)
    messages: collections.deque = collections.deque()
    ids = itertools.count(1)
    counts = {"depth": 0, "enqueued": 0, "taken": 0, "capacity": capacity}
    shop.stats.extra["queue"] = counts

    @app.post("/messages", status_code=201)
    async def enqueue(body: dict = Body(...)) -> dict:
        if len(messages) >= capacity:
            raise HTTPException(503, "queue full")
        message = {"id": next(ids), "body": body}
        messages.append(message)
        counts["enqueued"] += 1
        counts["depth"] = len(messages)
        return {"id": message["id"]}

    @app.post("/messages/take")
    async def take(limit: int = Query(10, alias="max", ge=1, le=MAX_BATCH)) -> dict:
        batch = [messages.popleft() for _ in range(min(limit, len(messages)))]
        counts["taken"] += len(batch)
        counts["depth"] = len(messages)
        return {"messages": batch}

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args)), args)


if __name__ == "__main__":
    main()
