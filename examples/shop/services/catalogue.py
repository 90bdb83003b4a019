"""catalogue: the socks, their tags and who viewed what, in MariaDB (real SQL: joins, an insert
per view, an unindexed aggregate and a deliberately slow search). Calls no other service."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, HTTPException, Request

from examples.shop import db, service, topology

logger = logging.getLogger(__name__)

SERVICE = topology.BY_NAME["catalogue"]

SOCK_COLUMNS = "s.id, s.name, s.description, s.price, s.stock, s.image_url, GROUP_CONCAT(t.name ORDER BY t.name) AS tags"
TAG_JOINS = "LEFT JOIN sock_tag st ON st.sock_id = s.id LEFT JOIN tag t ON t.id = st.tag_id"

LIST_SOCKS = (f"SELECT {SOCK_COLUMNS} FROM sock s {TAG_JOINS} "
              "GROUP BY s.id ORDER BY s.id LIMIT %s OFFSET %s")
LIST_SOCKS_BY_TAG = (f"SELECT {SOCK_COLUMNS} FROM sock s {TAG_JOINS} "
                     "WHERE s.id IN (SELECT st2.sock_id FROM sock_tag st2 JOIN tag t2 ON t2.id = st2.tag_id "
                     "WHERE t2.name = %s) GROUP BY s.id ORDER BY s.id LIMIT %s OFFSET %s")
GET_SOCK = f"SELECT {SOCK_COLUMNS} FROM sock s {TAG_JOINS} WHERE s.id = %s GROUP BY s.id"
RECORD_VIEW = "INSERT INTO sock_view (sock_id) VALUES (%s)"
# Slow on purpose: a 50 ms pause evaluated once (one-row derived table), then an unindexed LIKE scan.
SEARCH_SOCKS = ("SELECT s.id, s.name, s.price FROM (SELECT SLEEP(0.05) AS pause) AS deliberate_delay, sock s "
                "WHERE s.name LIKE %s OR s.description LIKE %s ORDER BY s.id")
# Grows slower as views pile up: sock_view.sock_id has no index.
POPULAR_SOCKS = ("SELECT s.id, s.name, COUNT(*) AS views FROM sock_view v JOIN sock s ON s.id = v.sock_id "
                 "GROUP BY s.id, s.name ORDER BY views DESC, s.id LIMIT 5")
LIST_TAGS = "SELECT name FROM tag ORDER BY name"


def _sock(row: dict) -> dict:
    sock = dict(row)
    sock["price"] = float(sock["price"])
    if "tags" in sock:
        sock["tags"] = sock["tags"].split(",") if sock["tags"] else []
    return sock


def _like_pattern(text: str) -> str:
    return "%" + re.sub(r"([%_\\])", r"\\\1", text) + "%"


def build_app(shop: service.Shop, pool: db.Pool) -> FastAPI:
    shop.stats.sql = pool.statements

    async def close_pool(app: FastAPI) -> None:
        pool.close()

    app = service.create_app(shop, on_shutdown=close_pool)

    @app.get("/catalogue")
    def list_socks(tags: str = "", page: int = 1, size: int = 6) -> list[dict]:
        size = min(max(size, 1), 100)
        offset = (max(page, 1) - 1) * size
        if tags:
            rows = pool.query(LIST_SOCKS_BY_TAG, (tags, size, offset))
        else:
            rows = pool.query(LIST_SOCKS, (size, offset))
        return [_sock(row) for row in rows]

    @app.get("/catalogue/search")
    def search(q: str = "") -> list[dict]:
        pattern = _like_pattern(q)
        return [_sock(row) for row in pool.query(SEARCH_SOCKS, (pattern, pattern))]

    @app.get("/catalogue/popular")
    def popular() -> list[dict]:
        return pool.query(POPULAR_SOCKS)

    @app.get("/catalogue/{sock_id}")
    def get_sock(sock_id: int) -> dict:
        rows = pool.query(GET_SOCK, (sock_id,))
        if not rows:
            raise HTTPException(404, f"no sock {sock_id}")
        pool.query(RECORD_VIEW, (sock_id,))
        return _sock(rows[0])

    @app.get("/tags")
    def list_tags() -> dict:
        return {"tags": [row["name"] for row in pool.query(LIST_TAGS)]}

    @app.get("/admin/db")
    async def database_stats(request: Request) -> dict:
        return {"connections_opened": pool.connections_opened}

    return app


def main(argv: list[str] | None = None) -> None:
    args = service.argument_parser(SERVICE).parse_args(argv)
    address = db.DatabaseAddress(args.db_host, args.db_port, args.db_user, args.db_password, args.db_name)
    app = build_app(service.shop_from_args(SERVICE, args), db.Pool(address, size=args.db_pool))
    service.serve(app, args)


if __name__ == "__main__":
    main()
