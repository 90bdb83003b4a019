"""meshscope's shared core: configuration, the wire model on Kafka, the mergeable latency sketch,
the on-disk spool and the retain-until-committed bookkeeping that agents and the collector share
when publishing to Kafka, and the `meshscope` command line.

Every other package may import from here; this package imports none of them at module level
(the command line imports each part lazily, when its subcommand runs).
"""
