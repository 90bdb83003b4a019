"""``meshscope agent``: the sidecar beside one service instance.

    meshscope agent --service orders --inbound 0.0.0.0:8080=127.0.0.1:18080/http \\
        --outbound payment=127.0.0.1:7001=payment.internal:80/http [--config agent.yaml]

Every ``AgentSettings`` variable is also a flag (``MESHSCOPE_SAMPLE_RATE`` -> ``--sample-rate``);
``--inbound``/``--outbound`` repeat. Precedence: flag > YAML > environment > default.
"""

from __future__ import annotations

import argparse
import gc
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

    tune_interpreter()
    try:
        uvloop.run(agent.serve())
    except OSError as exc:  # e.g. the listen address is in use
        print(f"meshscope agent: {exc}", file=sys.stderr)
        return 1
    return 0


def tune_interpreter() -> None:
    """Process-wide settings of the agent, once its modules are imported and its objects built.

    - GIL switch interval 1 ms (default 5 ms): the exporter thread and kafka-python's network thread
      share the GIL with the proxy's event loop; while one of them runs Python, a request that
      arrives waits for the GIL at most this long. It costs nothing while they sleep, which is
      nearly always (they wake a few times per second, not per request).
    - Everything alive now is frozen out of the cyclic GC (``gc.freeze``): a full collection then
      walks only what traffic allocated instead of the ~54,000 objects of the imported modules
      (pydantic, protobuf, kafka-python): 12-40 ms on the reference machine, a pause that every
      request in flight waited for. kafka-python is imported first so that its modules, loaded by
      the exporter on its first round, are among them.
    """
    sys.setswitchinterval(0.001)
    try:
        import kafka  # noqa: F401
    except ImportError:  # the exporter reports it when it needs Kafka
        pass
    gc.collect()
    gc.freeze()
