"""GET/POST/DELETE /api/sources: admin token only; what the API adds is what the watcher polls."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from assistant.live.sources import SourceBook, SourceState, source_id
from assistant.web.api import create_app

ADMIN = {"Authorization": "Bearer adm-feeds-test"}
CONFIGURED = "https://calder-gazette.example/rss.xml"


@pytest.fixture
def app_settings(make_settings):
    return make_settings(**{"server.admin_token": "adm-feeds-test",
                            "server.widget_tokens": {"wgt-feeds": ["https://wiki.example"]},
                            "sources": [{"url": CONFIGURED, "interval": 300}]})


def test_sources_api(app_settings):
    book = SourceBook(app_settings)
    book.save_states({CONFIGURED: SourceState(last_poll=1743490800, last_error="HTTP 503", articles_added=7)})
    with TestClient(create_app(app_settings), base_url="http://127.0.0.1") as c:
        assert c.get("/api/sources").status_code == 401
        assert c.get("/api/sources", headers={"Authorization": "Bearer wgt-feeds"}).status_code == 403
        assert c.post("/api/sources", json={"url": "https://x.example/feed"}).status_code == 401
        listed = c.get("/api/sources", headers=ADMIN).json()["sources"]
        assert listed == [{"id": source_id(CONFIGURED), "url": CONFIGURED, "kind": "auto", "interval": 300.0,
                           "origin": "config", "last_poll": "2025-04-01T07:00:00Z", "last_success": None,
                           "last_error": "HTTP 503", "articles_added": 7, "pages_known": 0, "pending": 0}]

        bad = c.post("/api/sources", headers=ADMIN, json={"url": "file:///etc/passwd"})
        assert bad.status_code == 400 and "http" in bad.json()["error"]
        assert c.post("/api/sources", headers=ADMIN, json={"url": "https://x.example", "kind": "pdf"}).status_code == 422
        metadata = c.post("/api/sources", headers=ADMIN, json={"url": "http://169.254.169.254/latest/meta-data/"})
        assert metadata.status_code == 400 and "metadata" in metadata.json()["error"]
        added = c.post("/api/sources", headers=ADMIN,
                       json={"url": "https://vell-courier.example/atom.xml", "interval": 600})
        assert added.status_code == 201
        new = added.json()
        assert (new["origin"], new["interval"], new["last_poll"]) == ("api", 600.0, None)
        # the watcher reads the same file
        assert [s.url for s in SourceBook(app_settings).sources()] == [CONFIGURED, "https://vell-courier.example/atom.xml"]
        assert len(c.get("/api/sources", headers=ADMIN).json()["sources"]) == 2

        assert c.delete(f"/api/sources/{source_id(CONFIGURED)}", headers=ADMIN).status_code == 409
        assert c.delete(f"/api/sources/{new['id']}").status_code == 401
        gone = c.delete(f"/api/sources/{new['id']}", headers=ADMIN)
        assert gone.status_code == 200 and gone.json()["url"] == "https://vell-courier.example/atom.xml"
        assert c.delete(f"/api/sources/{new['id']}", headers=ADMIN).status_code == 404
        assert [s.url for s in SourceBook(app_settings).sources()] == [CONFIGURED]


def test_sources_routes_never_5xx_under_generated_requests(app_settings):
    """schemathesis over the /api/sources operations only (valid and invalid requests, bounded)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    from tests.support.net import serve_in_thread

    with serve_in_thread(create_app(app_settings)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        operations = [op for op in operations if op.path.startswith("/api/sources")]
        assert {op.label for op in operations} == {"GET /api/sources", "POST /api/sources",
                                                   "DELETE /api/sources/{source_id}"}
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
                def run(case):
                    response = case.call_and_validate(base_url=url, headers=ADMIN, checks=[not_a_server_error])
                    if response.status_code >= 400:
                        assert isinstance(response.json().get("error"), str)

                try:
                    run()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, operation.label
        # whatever was added is still a readable sources file
        assert all(s.url.startswith(("http://", "https://")) for s in SourceBook(app_settings).sources())
