"""The `meshscope` command line.

    meshscope serve      ingestion + writer + query API + analysis + dashboard (one process)
    meshscope writer     Kafka -> ClickHouse writer alone (run several for scale-out)
    meshscope agent      the sidecar proxy beside one service instance
    meshscope demo       broker, server, the shop services with agents, and load
    meshscope migrate    apply the storage schema migrations and exit
    meshscope config     list every MESHSCOPE_* variable with its default (--markdown: as a table)

Each subcommand's own options are shown by ``meshscope SUBCOMMAND --help``. Parts are imported
only when their subcommand runs, so the agent does not load pandas or the ClickHouse engine.
"""

from __future__ import annotations

import importlib
import logging
import sys

from meshscope.settings import SettingsError, describe_all

# subcommand -> (module, function taking argv and returning an exit status)
SUBCOMMANDS = {
    "serve": ("collector.server", "run"),
    "writer": ("collector.writer_main", "run"),
    "agent": ("agents.cli", "run"),
    "demo": ("meshscope.demo", "run"),
    "migrate": ("storage.migrations", "run"),
}


def _print_config(markdown: bool) -> int:
    if markdown:
        print("| variable | default | meaning |\n|---|---|---|")
    for variable, default, description in describe_all():
        if markdown:
            print(f"| `{variable}` | `{default}` | {description} |")
        else:
            print(f"{variable}\t{default}\t{description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "config":
        return _print_config(markdown="--markdown" in rest)
    if command not in SUBCOMMANDS:
        print(f"meshscope: unknown command {command!r} (try: {', '.join([*SUBCOMMANDS, 'config'])})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "kafka"):  # per-request and per-connection INFO lines drown the useful ones
        logging.getLogger(chatty).setLevel(logging.WARNING)
    module_name, function_name = SUBCOMMANDS[command]
    run = getattr(importlib.import_module(module_name), function_name)
    try:
        return int(run(rest) or 0)
    except SettingsError as exc:
        print(f"meshscope {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
