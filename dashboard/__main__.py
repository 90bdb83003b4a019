"""``python -m dashboard --api http://127.0.0.1:9411 --port 8050``: the dashboard alone, against an API.

Serves at ``http://HOST:PORT/dashboard/`` (``--prefix`` to change). ``MESHSCOPE_AUTH_TOKEN`` is sent
to the API as a bearer token when set.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dashboard.app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="Run the meshscope dashboard alone, against meshscope's API.")
    parser.add_argument("--api", default="http://127.0.0.1:9411", help="base URL of meshscope's API (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8050, help="port to listen on (default %(default)s)")
    parser.add_argument("--prefix", default="/dashboard/", help="URL path of the dashboard (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prefix = "/" + args.prefix.strip("/") + "/" if args.prefix.strip("/") else "/"
    app = create_app(args.api, requests_pathname_prefix=prefix, routes_pathname_prefix=prefix)
    # Werkzeug's threaded server: enough for a few operators; `meshscope serve` mounts the same app in its ASGI server
    app.run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
