"""user: customers and logins, in memory (customers 1..50, user ``userN`` / password ``passwordN``).
Calls no other service."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from examples.shop import service, topology

SERVICE = topology.BY_NAME["user"]
CUSTOMERS = 50


class Login(BaseModel):
    username: str
    password: str


def _customer(number: int) -> dict:
    return {"id": number, "username": f"user{number}", "first_name": f"Customer {number}",
            "address": {"street": f"{number} Sock Street", "city": "Footbridge", "postcode": f"F{number:03d}"}}


def build_app(shop: service.Shop) -> FastAPI:
    app = service.create_app(shop)
    customers = {number: _customer(number) for number in range(1, CUSTOMERS + 1)}
    by_username = {customer["username"]: customer for customer in customers.values()}

    @app.get("/customers/{customer_id}")
    async def get_customer(customer_id: int) -> dict:
        if customer_id not in customers:
            raise HTTPException(404, f"no customer {customer_id}")
        return customers[customer_id]

    @app.post("/login")
    async def login(credentials: Login) -> dict:
        customer = by_username.get(credentials.username)
        if customer is None or credentials.password != f"password{customer['id']}":
            raise HTTPException(401, "wrong username or password")
        return {"customer_id": customer["id"]}

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args)), args)


if __name__ == "__main__":
    main()
