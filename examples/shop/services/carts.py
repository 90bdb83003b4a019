"""carts: each customer's shopping cart, in memory. Calls no other service."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from examples.shop import service, topology

SERVICE = topology.BY_NAME["carts"]


class Item(BaseModel):
    sock_id: int
    quantity: int = Field(default=1, ge=1, le=100)
    unit_price: float = Field(ge=0)


def build_app(shop: service.Shop) -> FastAPI:
    app = service.create_app(shop)
    carts: dict[int, dict[int, dict]] = {}

    def contents(customer_id: int) -> dict:
        items = list(carts.get(customer_id, {}).values())
        total = round(sum(item["quantity"] * item["unit_price"] for item in items), 2)
        return {"customer_id": customer_id, "items": items, "total": total}

    @app.get("/carts/{customer_id}")
    async def get_cart(customer_id: int) -> dict:
        return contents(customer_id)

    @app.post("/carts/{customer_id}/items", status_code=201)
    async def add_item(customer_id: int, item: Item) -> dict:
        cart = carts.setdefault(customer_id, {})
        line = cart.setdefault(item.sock_id, {"sock_id": item.sock_id, "quantity": 0, "unit_price": item.unit_price})
        line["quantity"] += item.quantity
        line["unit_price"] = item.unit_price
        return contents(customer_id)

    @app.delete("/carts/{customer_id}")
    async def empty_cart(customer_id: int) -> dict:
        carts.pop(customer_id, None)
        return contents(customer_id)

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args)), args)


if __name__ == "__main__":
    main()
