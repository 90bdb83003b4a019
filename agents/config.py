"""The agent's configuration: command-line flags and/or a YAML file over ``AgentSettings``.

Listeners::

    --inbound  LISTEN=UPSTREAM[/PROTOCOL]          0.0.0.0:8080=127.0.0.1:18080/http
    --outbound NAME=LISTEN=UPSTREAM[/PROTOCOL]     payment=127.0.0.1:7001=payment.internal:80/http

PROTOCOL is ``http`` (default), ``mysql`` or ``tcp``. The YAML file (``--config agent.yaml``) holds
the same settings by name (``service``, ``sample_rate``, ...), with ``inbound``/``outbound`` as lists
of those strings or of mappings ``{name, listen, upstream, protocol}``. Precedence: flag > YAML >
environment (``MESHSCOPE_*``) > default. Every error is one line (``ConfigError``/``SettingsError``).
"""

from __future__ import annotations

import socket
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.errors import ConfigError
from agents.observer import ListenerContext
from meshscope.settings import AgentSettings, SettingsError, load

PROTOCOLS = ("http", "mysql", "tcp")


@dataclass(slots=True, frozen=True)
class ListenerSpec:
    direction: str  # "inbound" or "outbound"
    name: str  # outbound: the dependency's service name; inbound: ""
    listen: str  # host:port
    upstream: str  # host:port
    protocol: str

    def context(self, settings: AgentSettings) -> ListenerContext:
        return ListenerContext(
            service=settings.service or "", instance=settings.instance or "", version=settings.version,
            direction=self.direction, remote_service=self.name, listen_address=self.listen,
            upstream_address=self.upstream, protocol=self.protocol,
        )


def _check_address(address: str, what: str, spec: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{what} {address!r} in {spec!r} is not host:port")
    return address


def parse_listener(spec: str, direction: str) -> ListenerSpec:
    """``[NAME=]LISTEN=UPSTREAM[/PROTOCOL]`` -> ListenerSpec (NAME required for outbound)."""
    text = spec.strip()
    protocol = "http"
    if "/" in text:
        text, _, protocol = text.rpartition("/")
        protocol = protocol.lower()
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {protocol!r} in {direction} listener {spec!r} (known: {', '.join(PROTOCOLS)})")
    parts = text.split("=")
    if direction == "outbound":
        if len(parts) != 3 or not parts[0]:
            raise ConfigError(f"outbound listener {spec!r}: expected NAME=LISTEN_HOST:PORT=UPSTREAM_HOST:PORT[/PROTOCOL]")
        name, listen, upstream = parts
    else:
        if len(parts) == 3:
            name, listen, upstream = parts
        elif len(parts) == 2:
            name, (listen, upstream) = "", parts
        else:
            raise ConfigError(f"inbound listener {spec!r}: expected LISTEN_HOST:PORT=UPSTREAM_HOST:PORT[/PROTOCOL]")
        name = ""  # an inbound listener's remote is whoever calls: no name
    return ListenerSpec(direction, name, _check_address(listen, "listen address", spec), _check_address(upstream, "upstream address", spec), protocol)


def _listener_from_yaml(item: Any, direction: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        unknown = set(item) - {"name", "listen", "upstream", "protocol"}
        if unknown:
            raise ConfigError(f"{direction} listener: unknown key(s) {', '.join(sorted(map(str, unknown)))} (known: name, listen, upstream, protocol)")
        if "listen" not in item or "upstream" not in item:
            raise ConfigError(f"{direction} listener {item!r}: needs listen and upstream")
        name = item.get("name") or ""
        text = f"{item['listen']}={item['upstream']}/{item.get('protocol', 'http')}"
        return f"{name}={text}" if name or direction == "outbound" else text
    raise ConfigError(f"{direction} listener {item!r}: expected a string or a mapping")


def read_yaml(path: Path) -> dict[str, Any]:
    """The YAML file as settings keyword arguments (listeners as spec strings)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(document).__name__}")
    known = set(AgentSettings.model_fields)
    values: dict[str, Any] = {}
    for key, value in document.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        if name in ("inbound", "outbound"):
            if not isinstance(value, list):
                value = [value]
            value = [_listener_from_yaml(item, name) for item in value]
        values[name] = value
    return values


def build(flags: dict[str, Any]) -> tuple[AgentSettings, list[ListenerSpec]]:
    """Settings and listeners from command-line values (None = not given) over YAML over env."""
    given = {k: v for k, v in flags.items() if v is not None and v != []}
    config_path = given.get("agent_config") or os.environ.get("MESHSCOPE_AGENT_CONFIG")
    values: dict[str, Any] = read_yaml(Path(config_path)) if config_path else {}
    values.update(given)
    settings = load(AgentSettings, **values)
    if not settings.service:
        raise SettingsError("MESHSCOPE_SERVICE: the agent needs the name of its service (--service)")
    if not settings.instance:
        settings.instance = f"{socket.gethostname()}:{os.getpid()}"
    listeners = [parse_listener(s, "inbound") for s in settings.inbound]
    listeners += [parse_listener(s, "outbound") for s in settings.outbound]
    if not listeners:
        raise ConfigError("no listener: give at least one --inbound or --outbound")
    seen: dict[str, str] = {}
    for listener in listeners:
        if listener.listen in seen and not listener.listen.endswith(":0"):
            raise ConfigError(f"listen address {listener.listen} used twice ({seen[listener.listen]} and {listener.direction})")
        seen[listener.listen] = listener.direction
    return settings, listeners
