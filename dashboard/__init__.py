"""The Dash web app: overview, service, topology, traces, recommendations and alerts pages.

May import `meshscope`, `analysis` and `storage` (read side only).
"""
