"""front-end: the shop's public HTTP API (JSON; the customer is named by ``?customer_id=``, where
a real shop would use a session cookie). Calls catalogue, carts, orders and user, and forwards
trace headers to them.

A dependency's 4xx is passed on with its status; a 5xx or an unreachable dependency answers 502.
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from examples.shop import service, topology

SERVICE = topology.BY_NAME["front-end"]


class CartItem(BaseModel):
    sock_id: int
    quantity: int = Field(default=1, ge=1, le=100)


class Login(BaseModel):
    username: str
    password: str


def relay(response: httpx.Response):
    """The dependency's JSON answer, or its 4xx status passed on to our caller."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise HTTPException(response.status_code, detail)
    return response.json()


def build_app(shop: service.Shop) -> FastAPI:
    app = service.create_app(shop)
    call = shop.dependencies.call

    @app.get("/")
    async def home() -> dict:
        tags, popular = await asyncio.gather(call("catalogue", "GET", "/tags"),
                                             call("catalogue", "GET", "/catalogue/popular"))
        return {"tags": relay(tags)["tags"], "popular": relay(popular)}

    @app.get("/catalogue")
    async def catalogue(tags: str = "", page: int = 1, size: int = 6) -> list:
        params = {"page": page, "size": size}
        if tags:
            params["tags"] = tags
        return relay(await call("catalogue", "GET", "/catalogue", params=params))

    @app.get("/catalogue/{sock_id}")
    async def sock(sock_id: int) -> dict:
        return relay(await call("catalogue", "GET", f"/catalogue/{sock_id}", route="/catalogue/{sock_id}"))

    @app.get("/search")
    async def search(q: str = "") -> list:
        return relay(await call("catalogue", "GET", "/catalogue/search", params={"q": q}))

    @app.get("/cart")
    async def cart(customer_id: int) -> dict:
        return relay(await call("carts", "GET", f"/carts/{customer_id}", route="/carts/{customer_id}"))

    @app.post("/cart/items", status_code=201)
    async def add_to_cart(customer_id: int, item: CartItem) -> dict:
        sock = relay(await call("catalogue", "GET", f"/catalogue/{item.sock_id}", route="/catalogue/{sock_id}"))
        line = {"sock_id": item.sock_id, "quantity": item.quantity, "unit_price": sock["price"]}
        return relay(await call("carts", "POST", f"/carts/{customer_id}/items", route="/carts/{customer_id}/items",
                                json=line))

    @app.post("/orders", status_code=201)
    async def place_order(customer_id: int) -> dict:
        return relay(await call("orders", "POST", "/orders", json={"customer_id": customer_id}))

    @app.get("/orders")
    async def orders(customer_id: int) -> list:
        return relay(await call("orders", "GET", "/orders", params={"customer_id": customer_id}))

    @app.get("/customers/{customer_id}")
    async def customer(customer_id: int) -> dict:
        return relay(await call("user", "GET", f"/customers/{customer_id}", route="/customers/{customer_id}"))

    @app.post("/login")
    async def login(credentials: Login) -> dict:
        return relay(await call("user", "POST", "/login", json=credentials.model_dump()))

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args)), args)


if __name__ == "__main__":
    main()
