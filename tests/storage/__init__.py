"""Storage tests: each runs on both transports (embedded chdb, and HTTP via the test double)."""
