"""A small microservice sock shop, the demo and end-to-end subject of meshscope.

Python HTTP services (FastAPI on uvicorn, httpx for outbound calls, PyMySQL for MariaDB) that call
each other over real HTTP: see ``topology`` for the call graph as data, ``services/`` for one module
per service, ``db`` for the catalogue's schema and seed data, ``load`` for the load generator.
Each service takes its listen port, its dependencies' base URLs and its database address from
command-line flags, so a meshscope agent can sit in front of it and of each of its dependencies.
Nothing here imports meshscope.
"""
