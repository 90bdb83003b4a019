"""Ports for test servers: outside the kernel's ephemeral range, so no outgoing connection takes one
before its server binds it."""

import socket

from meshscope import devbroker
from meshscope.devbroker import _ephemeral_low, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < _ephemeral_low() for port in ports)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_handed_out(monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        candidates = iter([taken, taken, 1500])
        monkeypatch.setattr(devbroker.random, "randrange", lambda low, high: next(candidates))
        assert devbroker.free_port() == 1500
