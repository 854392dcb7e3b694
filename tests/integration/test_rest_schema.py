"""Acceptance 5: schemathesis generates requests from the REST API's own OpenAPI document and
sends them to a real server on 127.0.0.1; no answer may be a 5xx or differ from the document
(status code, content type, headers, body schema).

Valid (positive) and invalid (negative) requests are both generated for every operation. The
schemathesis pytest plugin (``from_fixture``) does not run under pytest 9 here, so the
operations' hypothesis strategies are driven directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.harness import Server, run_server

EXAMPLES_PER_OPERATION = 40


def assert_accepted(case: schemathesis.Case, status: int, body: Any) -> None:
    """Schemathesis's own "schema-valid data is accepted" check (ST202), minus the one rule
    OpenAPI cannot state: ``from`` must be before ``to`` (a documented 400). Unknown symbols
    match the pattern but are not served: a documented 404."""
    if status < 400:
        return
    query = case.query or {}
    start, end = query.get("from"), query.get("to")
    reversed_range = isinstance(start, int) and isinstance(end, int) and start >= end
    if status == 400 and reversed_range:
        assert body["detail"]["code"] == "validation_error"
        return
    assert status == 404, (case.query, status, body)
    assert body["detail"]["code"] == "unknown_symbol"


@pytest.fixture(scope="module")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Hundreds of requests from one address: the REST rate limit (tested in
    # test_abuse_answers.py) would answer most of them 429 rather than check the schema.
    with run_server(
        tmp_path_factory.mktemp("rest"), sim_speed=60, rest_rate_limit_per_second=0
    ) as server:
        yield server


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_rest_api_matches_its_openapi_document(rest_server: Server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{rest_server.http}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    if mode is GenerationMode.NEGATIVE:
        # Only a parameter can be invalid: /healthz and /readyz take none.
        operations = [op for op in operations if any(True for _ in op.iter_parameters())]
    labels = {operation.label for operation in operations}
    assert "GET /api/v1/market-data/history" in labels
    calls: dict[str, int] = {}

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                timeout=10, excluded_checks=[positive_data_acceptance]
            )
            assert response.status_code < 500
            if mode is GenerationMode.POSITIVE:
                assert_accepted(case, response.status_code, response.json())
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1

        call()

    assert set(calls) == labels, "every operation was exercised"
