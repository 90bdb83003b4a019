"""shipping: accepts a shipment for an order and enqueues it on the queue for the queue-worker.
Does NOT forward trace headers: the queue hop starts a new trace, as asynchronous messaging
usually does."""

from __future__ import annotations

import itertools

from fastapi import FastAPI
from pydantic import BaseModel

from examples.shop import service, topology

SERVICE = topology.BY_NAME["shipping"]


class Shipment(BaseModel):
    order_id: int
    customer_id: int
    items: int = 0


def build_app(shop: service.Shop) -> FastAPI:
    app = service.create_app(shop)
    ids = itertools.count(1)

    @app.post("/shipping", status_code=201)
    async def ship(shipment: Shipment) -> dict:
        shipment_id = next(ids)
        message = {"shipment_id": shipment_id, **shipment.model_dump()}
        await shop.dependencies.call("queue", "POST", "/messages", json=message)
        return {"shipment_id": shipment_id, "status": "queued"}

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args)), args)


if __name__ == "__main__":
    main()
