"""Property-based run (schemathesis + hypothesis) over meshscope's own OpenAPI: no input gives a
5xx. (Driven directly: schemathesis' pytest plugin does not run under pytest 9.)"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

EXAMPLES_PER_OPERATION = 25


def test_no_server_errors(api):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def no_5xx(case):
            case.call_and_validate(checks=[not_a_server_error])

        no_5xx()
