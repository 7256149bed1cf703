"""Reliability matrix, row 8: schemathesis against the API's own OpenAPI schema, served on 127.0.0.1
(docs/reliability.md). Generic over whatever routes /openapi.json lists."""

from __future__ import annotations


import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from assistant.chain import Assistant
from assistant.config import load_settings
from assistant.ingest import Ingestor
from assistant.web.api import create_app
from tests.conftest import CORPUS, free_port, serve_in_thread


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
        r = httpx.get(f"{url}/healthz", timeout=60)
        assert r.status_code == 503
        body = r.json()
        assert "Chroma" in body["error"] and body["hint"].startswith("start it with `chroma run")
