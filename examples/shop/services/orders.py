"""orders: places an order: reads the customer's cart (carts), authorises the amount (payment),
ships it (shipping), then empties the cart (carts). Forwards trace headers to all of them.

A 5xx or unreachable dependency stops the order there and answers 502; an empty cart answers 400
(no payment call), a declined payment 402 (no shipping call)."""

from __future__ import annotations

import collections
import itertools

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from examples.shop import service, topology

SERVICE = topology.BY_NAME["orders"]
ORDERS_KEPT_PER_CUSTOMER = 100


class NewOrder(BaseModel):
    customer_id: int


def build_app(shop: service.Shop) -> FastAPI:
    app = service.create_app(shop)
    call = shop.dependencies.call
    ids = itertools.count(1)
    orders: dict[int, collections.deque] = collections.defaultdict(
        lambda: collections.deque(maxlen=ORDERS_KEPT_PER_CUSTOMER))

    @app.post("/orders", status_code=201)
    async def place_order(new_order: NewOrder) -> dict:
        customer_id = new_order.customer_id
        cart = (await call("carts", "GET", f"/carts/{customer_id}", route="/carts/{customer_id}")).json()
        if not cart["items"]:
            raise HTTPException(400, "cart is empty")
        payment = (await call("payment", "POST", "/paymentAuth", json={"amount": cart["total"]})).json()
        if not payment["authorised"]:
            raise HTTPException(402, payment["message"])
        order_id = next(ids)
        items = sum(item["quantity"] for item in cart["items"])
        shipment = (await call("shipping", "POST", "/shipping",
                               json={"order_id": order_id, "customer_id": customer_id, "items": items})).json()
        await call("carts", "DELETE", f"/carts/{customer_id}", route="/carts/{customer_id}")
        order = {"id": order_id, "customer_id": customer_id, "total": cart["total"], "items": cart["items"],
                 "shipment_id": shipment["shipment_id"], "status": "shipped"}
        orders[customer_id].append(order)
        return order

    @app.get("/orders")
    async def list_orders(customer_id: int) -> list[dict]:
        return list(orders.get(customer_id, ()))

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args)), args)


if __name__ == "__main__":
    main()
