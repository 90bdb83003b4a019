"""The shop's services against each other and the real MariaDB: trace header forwarding, failure
injection, SQL statements, and the schema."""

from __future__ import annotations

import uuid

import httpx
import pymysql
import pytest

from examples.shop import db, topology
from examples.shop.services import catalogue


@pytest.fixture
def front_end(shop):
    with httpx.Client(base_url=shop.url("front-end"), trust_env=False, timeout=30) as client:
        yield client


@pytest.fixture
def injections_reset(shop):
    yield
    for service in topology.SERVICES:
        shop.admin(service.name, "reset")


def traces_seen(shop, service: str) -> list[dict]:
    response = httpx.get(f"{shop.url(service)}/admin/traces", trust_env=False).raise_for_status()
    return [request["headers"] for request in response.json()["requests"]]


def test_trace_headers_reach_payment_through_orders_and_stop_at_the_queue(shop, front_end):
    trace_id = uuid.uuid4().hex
    headers = {"x-b3-traceid": trace_id, "x-b3-spanid": trace_id[:16], "x-b3-sampled": "1",
               "traceparent": f"00-{trace_id}-{trace_id[16:]}-01"}
    customer = 41
    assert front_end.post("/cart/items", params={"customer_id": customer}, json={"sock_id": 1},
                          headers=headers).status_code == 201
    assert front_end.post("/orders", params={"customer_id": customer}, headers=headers).status_code == 201

    forwarded = {"catalogue", "carts", "orders", "payment", "shipping"}  # front-end and orders forward
    for service in forwarded:
        seen = [h for h in traces_seen(shop, service) if h.get("x-b3-traceid") == trace_id]
        assert seen, f"{service} did not receive the trace"
        assert all(h["traceparent"] == headers["traceparent"] for h in seen)
    # shipping does not forward: the queue hop starts afresh
    assert not [h for h in traces_seen(shop, "queue") if h.get("x-b3-traceid") == trace_id]


def test_the_topology_says_who_forwards(shop):
    for service in topology.SERVICES:
        assert shop.stats(service.name)["forward_headers"] is service.forwards_headers


def test_failing_shipping_fails_exactly_the_ratio_of_orders(shop, front_end, injections_reset):
    customer = 42
    before = shop.stats("shipping")["injected"]["failed"]
    shop.admin("shipping", "fail", ratio=0.5)
    statuses = []
    for _ in range(4):
        front_end.post("/cart/items", params={"customer_id": customer}, json={"sock_id": 2}).raise_for_status()
        statuses.append(front_end.post("/orders", params={"customer_id": customer}).status_code)
    # error diffusion: every second shipment fails; orders and front-end answer 502 for it
    assert statuses == [201, 502, 201, 502]
    assert shop.stats("shipping")["injected"]["failed"] - before == 2
    assert shop.admin("shipping", "reset") == {"slow_ms": 0, "fail_ratio": 0.0}
    front_end.post("/cart/items", params={"customer_id": customer}, json={"sock_id": 2}).raise_for_status()
    assert front_end.post("/orders", params={"customer_id": customer}).status_code == 201


def test_slowed_payment_delays_every_authorisation(shop, front_end, injections_reset):
    customer = 43
    before = shop.stats("payment")["injected"]["slowed"]
    assert shop.admin("payment", "slow", ms=30)["slow_ms"] == 30
    front_end.post("/cart/items", params={"customer_id": customer}, json={"sock_id": 3}).raise_for_status()
    assert front_end.post("/orders", params={"customer_id": customer}).status_code == 201
    stats = shop.stats("payment")
    assert stats["injected"]["slowed"] - before == 1
    assert stats["injection"]["slow_ms"] == 30


def test_injection_spares_admin_and_health(shop, injections_reset):
    shop.admin("user", "fail", ratio=1.0)
    assert httpx.get(f"{shop.url('user')}/health", trust_env=False).status_code == 200
    assert httpx.get(f"{shop.url('user')}/customers/1", trust_env=False).status_code == 503
    assert shop.stats("user")["routes"]["GET /customers/{customer_id}"]["statuses"]["503"] >= 1


def test_catalogue_counts_the_sql_it_sends(shop, front_end):
    before = shop.stats("catalogue")["sql"]
    assert front_end.get("/catalogue/3").json()["tags"] == ["action", "blue", "formal", "red"]
    assert front_end.get("/catalogue/404").status_code == 404
    found = front_end.get("/search", params={"q": "geek"}).json()
    assert [sock["id"] for sock in found] == [6]  # "geeky" in its description
    assert [sock["id"] for sock in front_end.get("/catalogue", params={"tags": "blue"}).json()] == [2, 3, 7, 9]
    after = shop.stats("catalogue")["sql"]

    def sent(sql: str) -> int:
        key = sql.replace("%s", "?")
        return after.get(key, 0) - before.get(key, 0)

    assert sent(catalogue.GET_SOCK) == 2
    assert sent(catalogue.RECORD_VIEW) == 1  # only for a sock that exists
    assert sent(catalogue.SEARCH_SOCKS) == 1
    assert sent(catalogue.LIST_SOCKS_BY_TAG) == 1
    opened = httpx.get(f"{shop.url('catalogue')}/admin/db", trust_env=False).json()["connections_opened"]
    assert after[f"SET NAMES {db.CHARSET}"] == opened >= 1


def test_schema_is_idempotent_and_view_lookups_unindexed(shop_database):
    address = {key: shop_database[key] for key in ("host", "port", "user", "password")}
    db.create(**address, database=shop_database["database"])  # a second time: nothing changes
    with pymysql.connect(**address, database=shop_database["database"]) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT COUNT(*) FROM sock")
        assert cursor.fetchone()[0] == len(db.SOCKS)
        cursor.execute("SELECT COUNT(*) FROM sock_tag")
        assert cursor.fetchone()[0] == sum(len(tags) for *_, tags in db.SOCKS)
        cursor.execute("SHOW INDEX FROM sock_view WHERE Column_name = 'sock_id'")
        assert cursor.fetchall() == ()


def test_a_database_name_is_never_interpolated_unchecked(shop_database):
    with pytest.raises(ValueError):
        db.create(shop_database["host"], shop_database["port"], database="shop`; DROP DATABASE x; --")


def test_command_rejects_a_dependency_the_service_does_not_call():
    with pytest.raises(ValueError):
        topology.command("payment", 1234, {"orders": "http://127.0.0.1:1"})


@pytest.mark.parametrize("service", topology.SERVICES, ids=lambda service: service.name)
def test_topology_lists_exactly_the_endpoints_each_service_serves(service):
    import importlib

    module = importlib.import_module(service.module)
    state = module.service.Shop(service.name, service.forwards_headers, {})
    if service.uses_db:  # the pool connects on first use only
        app = module.build_app(state, db.Pool(db.DatabaseAddress("127.0.0.1", 1, "root", "", "shop")))
    else:
        app = module.build_app(state)
    served = {f"{method} {route.path}" for route in app.routes for method in getattr(route, "methods", ())
              if not route.path.startswith("/admin/") and route.path != "/health" and method != "HEAD"}
    assert served == set(service.endpoints)
