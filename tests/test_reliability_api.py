"""Reliability matrix, row 8: schemathesis against the API's own OpenAPI schema, served on 127.0.0.1
(docs/reliability.md). Generic over whatever routes /openapi.json lists."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from assistant.answering.chain import Assistant
from assistant.config import load_settings
from assistant.ingest.ingestor import Ingestor
from assistant.web.api import create_app
from tests.support.net import serve_in_thread
from tests.support.paths import CORPUS

ADMIN = "reliability-admin-token"


@pytest.fixture(scope="module")
def api_url(tmp_path_factory):
    """The app over a small real store, with an admin token so write routes are exercised too."""
    data = tmp_path_factory.mktemp("api") / "data"
    settings_ = load_settings(data_dir=str(data), **{"server.admin_token": ADMIN,
                                                     "server.rate_limit_per_minute": 100_000})
    Ingestor(settings_).ingest_paths([CORPUS])
    app = create_app(settings_, Assistant(settings_))
    with serve_in_thread(app) as url:
        yield url


@schemathesis.check
def error_is_json_with_message(ctx, response, case):
    """Every 4xx/5xx answer is a JSON object carrying a human-readable message (`error`, plus `hint`)."""
    if response.status_code >= 400:
        body = response.json()
        if case.path.startswith("/v1/"):  # the OpenAI-compatible routes answer in OpenAI's shape, error.message
            assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
            body = {"error": body["error"].get("message")}
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body


def test_api_never_5xx_and_errors_are_json(api_url):
    """Every operation /openapi.json lists, with generated valid and invalid requests (bounded examples).

    The operations are driven by hand rather than by `schemathesis.pytest.from_fixture`, whose lazy
    parametrization breaks on pytest 9 (it writes `Function._nodeid`, which pytest 9 no longer has).
    """
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    tried = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
            def run(case):
                case.call_and_validate(base_url=api_url, headers={"Authorization": f"Bearer {ADMIN}"},
                                       checks=[not_a_server_error, error_is_json_with_message])

            try:
                run()
            except Unsatisfiable:
                # no invalid request exists for this operation (e.g. GET /healthz takes no input)
                assert mode is GenerationMode.NEGATIVE, operation.label
            else:
                tried.append((operation.label, mode.value))
    assert ("POST /api/ask", "negative") in tried and ("POST /api/articles", "positive") in tried, tried


def test_schema_lists_routes(api_url):
    paths = httpx.get(f"{api_url}/openapi.json").json()["paths"]
    assert "/healthz" in paths and "/api/ask" in paths
