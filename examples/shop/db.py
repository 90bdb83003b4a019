"""The catalogue's MariaDB database: schema, seed data and a small connection pool.

    python -m examples.shop.db --host 127.0.0.1 --port 3306 --user root --password '' --database shop

creates the database, its tables and seed rows; running it again changes nothing (every statement
is ``IF NOT EXISTS`` or ``INSERT IGNORE`` with fixed keys). ``sock_view.sock_id`` deliberately has
no index, so the catalogue's "popular" query scans the whole table and slows down as views pile up.
"""

from __future__ import annotations

import argparse
import collections
import logging
import queue
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pymysql
import pymysql.cursors

from examples.shop import topology
from examples.shop.errors import DatabaseError

logger = logging.getLogger(__name__)

CHARSET = "utf8mb4"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sock (
        id INT PRIMARY KEY AUTO_INCREMENT,
        name VARCHAR(64) NOT NULL,
        description VARCHAR(255) NOT NULL,
        price DECIMAL(8, 2) NOT NULL,
        stock INT NOT NULL,
        image_url VARCHAR(128) NOT NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS tag (
        id INT PRIMARY KEY AUTO_INCREMENT,
        name VARCHAR(32) NOT NULL UNIQUE
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS sock_tag (
        sock_id INT NOT NULL,
        tag_id INT NOT NULL,
        PRIMARY KEY (sock_id, tag_id)
    ) ENGINE=InnoDB""",
    # No index on sock_id, on purpose: see the module docstring.
    """CREATE TABLE IF NOT EXISTS sock_view (
        id BIGINT PRIMARY KEY AUTO_INCREMENT,
        sock_id INT NOT NULL,
        viewed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) ENGINE=InnoDB""",
)

TAGS = ("brown", "geek", "formal", "blue", "skin", "red", "action", "sport", "black", "magic", "green")

# (name, description, price, tags): the sock shop's catalogue.
SOCKS = (
    ("Weave special", "Limited issue Weave socks.", 17.15, ("geek",)),
    ("Nerd leg", "For all those leg lovers out there. A perfect example of a swivel chair trained calf.", 7.99,
     ("blue", "skin")),
    ("Crossed", "A mature sock, crossed, with an air of nonchalance.", 17.32, ("red", "action", "blue", "formal")),
    ("SuperSport XL", "Ready for action. Engineers: be ready to smash that next bug!", 15.00, ("sport", "formal", "black")),
    ("Holy", "Socks fit for a Messiah. You too can experience walking in water with these special edition beauties.",
     99.99, ("action", "magic")),
    ("YouTube.sock", "We were not paid to sell this sock. It's just a bit geeky.", 10.99, ("geek", "formal")),
    ("Figueroa", "enim officia aliqua excepteur esse deserunt quis aliquip nostrud anim", 14.00, ("green", "formal", "blue")),
    ("Classic", "Keep it simple.", 12.00, ("brown", "green")),
    ("Colourful", "proident occaecat irure et excepteur labore minim nisi amet irure", 18.00, ("brown", "blue")),
)


def create(host: str, port: int, user: str = "root", password: str = "", database: str = topology.DATABASE) -> None:
    """Create ``database`` with its schema and seed rows; idempotent."""
    if not re.fullmatch(r"\w+", database):
        raise ValueError(f"not a plain database name: {database!r}")
    try:
        connection = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)
    except pymysql.MySQLError as exc:
        raise DatabaseError(f"cannot connect to MariaDB at {host}:{port}: {exc}") from exc
    with connection:
        cursor = connection.cursor()
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        cursor.execute(f"USE `{database}`")
        for statement in SCHEMA:
            cursor.execute(statement)
        cursor.executemany("INSERT IGNORE INTO tag (id, name) VALUES (%s, %s)",
                           [(number, name) for number, name in enumerate(TAGS, start=1)])
        tag_ids = {name: number for number, name in enumerate(TAGS, start=1)}
        cursor.executemany(
            "INSERT IGNORE INTO sock (id, name, description, price, stock, image_url) VALUES (%s, %s, %s, %s, %s, %s)",
            [(number, name, description, price, 100 + 7 * number, f"/img/{number}.jpg")
             for number, (name, description, price, _) in enumerate(SOCKS, start=1)])
        cursor.executemany("INSERT IGNORE INTO sock_tag (sock_id, tag_id) VALUES (%s, %s)",
                           [(number, tag_ids[tag]) for number, (*_, tags) in enumerate(SOCKS, start=1) for tag in tags])
    logger.info("database %s ready at %s:%d", database, host, port)


@dataclass(frozen=True, slots=True)
class DatabaseAddress:
    host: str
    port: int
    user: str
    password: str
    database: str


class Pool:
    """At most ``size`` PyMySQL connections, opened on demand; a connection that failed is dropped.

    Counts every statement it sends, by its template (``%s`` shown as ``?``), in ``statements``,
    including the ``SET NAMES utf8mb4`` PyMySQL sends on each new connection.
    """

    def __init__(self, address: DatabaseAddress, size: int = 4, connect_timeout: float = 5.0) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.statements: collections.Counter = collections.Counter()
        self.connections_opened = 0
        self._count_lock = threading.Lock()  # statements are counted from the server's worker threads
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = queue.Queue()
        for _ in range(size):
            self._slots.put(None)

    @contextmanager
    def connection(self) -> Iterator[pymysql.connections.Connection]:
        self._slots.get()  # blocks while `size` connections are in use
        connection = None
        try:
            connection = self._idle.get_nowait() if not self._idle.empty() else self._connect()
            yield connection
        except pymysql.MySQLError as exc:
            if connection is not None:
                connection.close()  # it may be half-way through a packet: never reuse it
                connection = None
            raise DatabaseError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if connection is not None:
                self._idle.put(connection)
            self._slots.put(None)

    def query(self, sql: str, args: tuple = ()) -> list[dict]:
        with self.connection() as connection:
            with self._count_lock:
                self.statements[sql.replace("%s", "?")] += 1
            with connection.cursor(pymysql.cursors.DictCursor) as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())

    def _connect(self) -> pymysql.connections.Connection:
        address = self.address
        connection = pymysql.connect(host=address.host, port=address.port, user=address.user,
                                     password=address.password, database=address.database, autocommit=True,
                                     charset=CHARSET, connect_timeout=self.connect_timeout)
        # PyMySQL sends this on every connect (its charset handshake); the server's autocommit is
        # already on, so it sends nothing else.
        with self._count_lock:
            self.statements[f"SET NAMES {CHARSET}"] += 1
            self.connections_opened += 1
        return connection

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.shop.db", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="")
    parser.add_argument("--database", default=topology.DATABASE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    create(args.host, args.port, args.user, args.password, args.database)


if __name__ == "__main__":
    main()
