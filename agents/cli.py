"""``meshscope agent``: the sidecar beside one service instance.

    meshscope agent --service orders --inbound 0.0.0.0:8080=127.0.0.1:18080/http \\
        --outbound payment=127.0.0.1:7001=payment.internal:80/http [--config agent.yaml]

Every ``AgentSettings`` variable is also a flag (``MESHSCOPE_SAMPLE_RATE`` -> ``--sample-rate``);
``--inbound``/``--outbound`` repeat. Precedence: flag > YAML > environment > default.
"""

from __future__ import annotations

import argparse
import logging
import sys

from agents.config import build
from agents.errors import AgentError
from meshscope.settings import AgentSettings, SettingsError

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump, no traceback
        raise AgentError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meshscope agent", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", dest="agent_config", metavar="FILE", help="YAML file with the same settings (MESHSCOPE_AGENT_CONFIG)")
    for name, info in AgentSettings.model_fields.items():
        if name == "agent_config":
            continue
        flag = "--" + name.replace("_", "-")
        if name in ("inbound", "outbound"):
            parser.add_argument(flag, dest=name, action="append", metavar="SPEC", help=(info.description or "").replace("%", "%%"))
        else:
            parser.add_argument(flag, dest=name, metavar=name.split("_")[-1].upper(), help=f"{info.description} (MESHSCOPE_{name.upper()})".replace("%", "%%"))
    return parser


def run(argv: list[str]) -> int:
    try:
        namespace = _parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except AgentError as exc:
        print(f"meshscope agent: {exc}", file=sys.stderr)
        return 2
    try:
        settings, listeners = build(vars(namespace))
        from agents.runtime import Agent

        agent = Agent(settings, listeners)
    except (AgentError, SettingsError) as exc:
        print(f"meshscope agent: {exc}", file=sys.stderr)
        return 2
    import uvloop

    # The exporter thread and kafka-python's network thread share the GIL with the proxy's event
    # loop: hand it back within 1 ms instead of the default 5 ms, so that an export round can
    # not add milliseconds to the requests in flight.
    sys.setswitchinterval(0.001)
    try:
        uvloop.run(agent.serve())
    except OSError as exc:  # e.g. the listen address is in use
        print(f"meshscope agent: {exc}", file=sys.stderr)
        return 1
    return 0
