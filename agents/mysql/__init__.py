"""MySQL/MariaDB wire-protocol observation for the agent's "mysql" listeners.

``framing`` splits a byte stream into packets (4-byte header, payloads over 16 MB split across
frames) keeping only a bounded prefix of each; ``decoder`` is the per-connection state machine fed
bytes and timestamps that returns ``StatementEvent``s; ``sql`` digests and masks statement text;
``values`` decodes bound prepared-statement parameters; ``observer`` glues a decoder to the
agent's ``Telemetry`` (spans and per-statement metrics). Imports only ``agents.observer`` and
``meshscope``.
"""
