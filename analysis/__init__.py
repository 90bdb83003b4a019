"""Analysis: RED metrics from merged latency distributions, anomaly detection, scaling
recommendations with their evidence, version comparison, alert rules and webhook delivery.

May import `meshscope` and `storage`; never collector, agents or dashboard.
"""
