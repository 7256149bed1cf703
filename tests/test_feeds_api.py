"""GET/POST/DELETE /api/sources: admin token only; what the API adds is what the watcher polls."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from assistant.sources import SourceBook, SourceState, source_id
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
