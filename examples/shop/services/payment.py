"""payment: authorises an amount (declines above ``DECLINE_ABOVE``). Calls no other service; the
usual target of ``/admin/slow`` in the demo."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from examples.shop import service, topology

SERVICE = topology.BY_NAME["payment"]
DECLINE_ABOVE = 1000.0


class Authorisation(BaseModel):
    amount: float = Field(ge=0)


def build_app(shop: service.Shop) -> FastAPI:
    app = service.create_app(shop)

    @app.post("/paymentAuth")
    async def authorise(request: Authorisation) -> dict:
        authorised = request.amount <= DECLINE_ABOVE
        return {"authorised": authorised, "message": "approved" if authorised else "amount over limit"}

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    service.serve(build_app(service.shop_from_args(SERVICE, args)), args)


if __name__ == "__main__":
    main()
