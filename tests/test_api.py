"""The REST API over a real store: shapes, streaming order, tokens, origins, rate and size limits, errors."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from assistant.answering.chain import Assistant
from assistant.config import load_settings
from assistant.web.api import create_app
from tests.support.answers import sse_events
from tests.support.net import free_port

ADMIN = "admin-secret-123"
WIDGET = "widget-token-abc"
WIKI = "http://wiki.example"
QUESTION = "What did Peskov say about BRICS?"  # the seed article answers it under any refusal calibration
SEED_TITLE = "Russia snubs Iran as Kremlin refuses military help: “BRICS is not a mutual defense pact”"
XSS = "<img src=x onerror=alert(1)>"


def _settings(data_dir, **server):
    overrides = {"server.admin_token": ADMIN, "server.widget_tokens": {WIDGET: [WIKI]},
                 "server.rate_limit_per_minute": 1000, "server.allowed_hosts": ["testserver"]}
    overrides.update({f"server.{k}": v for k, v in server.items()})
    return load_settings(data_dir=str(data_dir), **overrides)


@pytest.fixture(scope="module")
def api_data_dir(corpus_data_dir, tmp_path_factory):
    """A writable copy of the session's corpus store (these tests ingest and delete)."""
    target = tmp_path_factory.mktemp("api") / "data"
    shutil.copytree(corpus_data_dir, target)
    return target


@pytest.fixture(scope="module")
def api_assistant(api_data_dir):
    return Assistant(_settings(api_data_dir))


@pytest.fixture(scope="module")
def client(api_assistant):
    with TestClient(create_app(api_assistant.settings, api_assistant)) as c:
        yield c


def test_openapi_schema_has_the_routes(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/ask", "/api/ask/stream", "/api/articles", "/api/articles/{article_id}", "/healthz"} <= set(paths)
    assert set(paths["/api/articles"]) == {"get", "post"} and "delete" in paths["/api/articles/{article_id}"]
    cit = schema["components"]["schemas"]["CitationOut"]["properties"]
    assert {"n", "article_id", "title", "source", "published_at", "url", "quote", "start", "end",
            "supported"} <= set(cit)
    # The documented shapes are the answer's own fields, so neither can gain one the other lacks.
    from dataclasses import fields

    from assistant.models import Answer, Citation
    assert set(cit) == {f.name for f in fields(Citation)}
    internal = {"passages"}  # every retrieved passage, for the engines; the API sends the cited ones
    assert set(schema["components"]["schemas"]["AskOut"]["properties"]) == {f.name for f in fields(Answer)} - internal
    assert "429" in paths["/api/ask"]["post"]["responses"]
    assert client.get("/docs").status_code == 200 and client.get("/redoc").status_code == 200
    example = json.dumps(schema["components"]["schemas"]["ArticleIn"])
    assert ".example/" in example and "Russia" not in example  # the documented article is a fictional one
    assert client.get("/healthz").json()["chunks"] > 0


def test_ask_returns_cited_answer(client):
    r = client.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 200
    data = r.json()
    assert set(data) == {"answer", "refused", "citations", "support", "unsupported", "notice"}
    assert data["refused"] is False and "[1]" in data["answer"]
    c = data["citations"][0]
    assert c["title"] == SEED_TITLE
    assert c["n"] == 1 and c["end"] - c["start"] == len(c["quote"]) and c["quote"] in c["passage"]
    # The seed article has no outlet, author, date or URL: null, never the string "None".
    assert c["source"] is None and c["published_at"] is None and c["url"] is None


def test_ask_accepts_history_and_filters(client):
    r = client.post("/api/ask", json={"question": "What about China?",
                                      "history": [{"question": QUESTION, "answer": "No [1]"}],
                                      "filters": {"date_from": "2025-06-01", "sources": ["Avrel Harbour Gazette"]}})
    assert r.status_code == 200 and r.json()["answer"]
    bad = client.post("/api/ask", json={"question": QUESTION, "filters": {"date_from": "June"}})
    assert bad.status_code == 422 and "date_from" in bad.json()["error"]


def test_filters_read_days_as_retrieval_does(client):
    """One day rule (text/timeparse.parse_day) for the API and retrieval: the ISO week date 2025-W23-2 is that
    Tuesday (2025-06-03) and 2025-W26 its Monday; a day the calendar lacks is 422 {error, hint}, as before."""
    week = client.post("/api/ask", json={"question": QUESTION, "filters": {"date_from": "2025-W23-2",
                                                                            "today": "2025-W26"}})
    day = client.post("/api/ask", json={"question": QUESTION, "filters": {"date_from": "2025-06-03",
                                                                           "today": "2025-06-23"}})
    assert week.status_code == 200, week.text
    assert week.json() == day.json()
    for bad in ("2025-02-30", "2025-13-01", "2025-W54", "2025-W23-8", "June"):
        r = client.post("/api/ask", json={"question": QUESTION, "filters": {"date_to": bad}})
        assert r.status_code == 422, (bad, r.text)
        assert "date_to" in r.json()["error"] and bad in r.json()["error"] and r.json()["hint"]


def test_a_follow_up_is_read_with_the_conversation(client):
    """"And China?" after the seed question is about China's part in it: the Lavrov / Wang Yi condemnation."""
    seed = "Did Russia offer Iran military help?"
    first = client.post("/api/ask", json={"question": seed}).json()
    r = client.post("/api/ask", json={"question": "And China?",
                                      "history": [{"question": seed, "answer": first["answer"]}]})
    assert r.status_code == 200
    data = r.json()
    assert not data["refused"] and "Wang Yi" in data["answer"], data["answer"]
    assert any("Wang Yi" in c["quote"] for c in data["citations"])


def test_stream_sends_deltas_then_citations_then_done(client):
    with client.stream("POST", "/api/ask/stream", json={"question": QUESTION}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and kinds.count("citations") == 1
    assert kinds[:-2] and set(kinds[:-2]) == {"delta"}
    streamed = "".join(d["text"] for k, d in events if k == "delta")
    final = events[-2][1]
    assert streamed.strip() and final["citations"] and final["answer"]
    assert final == client.post("/api/ask", json={"question": QUESTION}).json()


def test_admin_routes_need_the_admin_token(client):
    article = {"title": "Harbour reopens", "body": "The harbour at Port Vell reopened on Monday after repairs."}
    assert client.post("/api/articles", json=article).status_code == 401
    assert client.post("/api/articles", json=article, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = client.post("/api/articles", json=article, headers={"Authorization": f"Bearer {WIDGET}"})
    assert r.status_code == 403 and r.json()["error"]
    assert client.delete("/api/articles/abc").status_code == 401
    assert client.delete("/api/articles/abc", headers={"X-Widget-Token": WIDGET}).status_code == 403
    r = client.post("/api/articles", json=article, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and r.json()["added"] == 1
    aid = r.json()["ids"][0]
    listed = {a["id"]: a for a in client.get("/api/articles", params={"limit": 500}).json()["articles"]}
    assert listed[aid]["title"] == "Harbour reopens" and listed[aid]["chunks"] >= 1
    again = client.post("/api/articles", json=[article], headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert again["unchanged"] == 1 and again["added"] == 0
    r = client.delete(f"/api/articles/{aid}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and r.json() == {"id": aid, "chunks": listed[aid]["chunks"]}
    assert aid not in {a["id"] for a in client.get("/api/articles", params={"limit": 500}).json()["articles"]}
    missing = client.delete(f"/api/articles/{aid}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert missing.status_code == 404 and "error" in missing.json()


def test_bad_articles_are_reported(client):
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = client.post("/api/articles", json={"title": "No body here"}, headers=admin)
    assert r.status_code == 400 and "missing body" in r.json()["error"]
    r = client.post("/api/articles", json=[{"title": "Ok", "body": "Fine text about ferries in Oslo."},
                                            {"title": "Empty", "body": ""}], headers=admin)
    assert r.status_code == 200 and r.json()["added"] == 1 and "missing body" in r.json()["failed"][0]["reason"]
    client.delete(f"/api/articles/{r.json()['ids'][0]}", headers=admin)
    assert client.post("/api/articles", json={"articles": []}, headers=admin).status_code == 400


def test_xss_title_comes_back_as_plain_text(client):
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = client.post("/api/articles", headers=admin, json={
        "title": XSS, "body": "The Lorvik clove harvest failed this year after unusually heavy rains, "
                              "officials in Port Avrel said on Tuesday."})
    assert r.status_code == 200
    aid = r.json()["ids"][0]
    try:
        listing = client.get("/api/articles", params={"limit": 500})
        assert XSS in listing.text  # raw JSON text: neither escaped to &lt; nor stripped
        answer = client.post("/api/ask", json={"question": "What happened to the Lorvik clove harvest?"})
        assert XSS in answer.text
        assert answer.json()["citations"][0]["title"] == XSS
        assert answer.headers["content-type"].startswith("application/json")
    finally:
        client.delete(f"/api/articles/{aid}", headers=admin)


def test_widget_tokens_are_tied_to_origins(client):
    q = {"question": QUESTION}
    r = client.post("/api/ask", json=q, headers={"Authorization": "Bearer wrong", "Origin": WIKI})
    assert r.status_code == 401 and r.json()["error"] == "unknown token"
    r = client.post("/api/ask", json=q, headers={"Authorization": f"Bearer {WIDGET}", "Origin": WIKI})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == WIKI
    r = client.post("/api/ask", json=q, headers={"X-Widget-Token": WIDGET, "Origin": "http://evil.example"})
    assert r.status_code == 403 and "evil.example" in r.json()["error"]
    assert "access-control-allow-origin" not in r.headers
    # Preflights: allowed origin gets CORS headers, others do not.
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = client.options("/api/ask/stream", headers={"Origin": WIKI, **pre})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == WIKI
    assert "authorization" in ok.headers["access-control-allow-headers"]
    no = client.options("/api/ask/stream", headers={"Origin": "http://evil.example", **pre})
    assert no.status_code == 400 and "access-control-allow-origin" not in no.headers
    # Widget tokens only ask; no token is fine without an Origin (curl) but not from another site.
    assert client.get("/api/articles", headers={"X-Widget-Token": WIDGET}).status_code == 403
    assert client.post("/api/ask", json=q, headers={"Origin": WIKI}).status_code == 401
    assert client.post("/api/ask", json=q, headers={"Origin": "http://testserver"}).status_code == 200


def test_rate_limit_answers_429_with_retry_after(api_assistant):
    settings = _settings(api_assistant.settings.data_dir, rate_limit_per_minute=2)
    with TestClient(create_app(settings, api_assistant)) as c:
        h = {"X-Widget-Token": WIDGET, "Origin": WIKI}
        assert c.get("/api/nowhere").status_code == 404
        # The admin's requests do not spend the budget...
        for _ in range(4):
            assert c.get("/api/articles", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
        for _ in range(2):
            assert c.post("/api/ask", json={"question": QUESTION}, headers=h).status_code == 200
        r = c.post("/api/ask", json={"question": QUESTION}, headers=h)
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60 and r.json()["error"]
        assert r.headers["access-control-allow-origin"] == WIKI  # the widget can read the message
        # ...but once the IP's budget is spent no token is compared (failed guesses spend it too).
        assert c.get("/api/articles", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 429


# The limiter's own window (the `limits` library's moving window, in memory and on Redis) is tested in
# tests/test_service_limits.py.


def test_oversized_bodies_get_413(api_assistant):
    settings = _settings(api_assistant.settings.data_dir, max_request_kb=1, max_upload_mb=0.01)
    with TestClient(create_app(settings, api_assistant)) as c:
        r = c.post("/api/ask", json={"question": "x" * 1500})
        assert r.status_code == 413 and "limit" in r.json()["error"]

        def chunks():  # no Content-Length: the guard counts bytes as they arrive
            yield b'{"question": "'
            for _ in range(10):
                yield b"y" * 200
            yield b'"}'

        r = c.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]
        big = [{"title": f"t{i}", "body": "z" * 1000} for i in range(20)]
        r = c.post("/api/articles", json=big, headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 413


def test_errors_are_json_without_tracebacks(client):
    """Each bad request gets its one status and a message saying what was wrong, as JSON, never a traceback."""
    bad_json = client.post("/api/ask", content=b"{not json", headers={"Content-Type": "application/json"})
    for r, status, message in ((client.post("/api/ask", json={"question": ""}), 422, "at least 1 character"),
                               (bad_json, 422, "JSON decode error"),
                               (client.post("/api/ask", json={"question": "   "}), 400, "the question is empty"),
                               (client.post("/api/ask", json={"question": "q" * 3000}), 422, "at most 2000 characters"),
                               (client.get("/api/nothing-here"), 404, "no API route /api/nothing-here")):
        assert r.status_code == status, (message, r.status_code, r.text)
        assert message in r.json()["error"] and r.json()["hint"] and "Traceback" not in r.text


def test_unreachable_store_is_a_json_503_from_our_handler(tmp_path):
    """The Chroma server unreachable: questions, their stream and /healthz answer 503 as JSON from our
    AssistantError handler (never a 500 page), naming the store and how to start it."""
    settings = load_settings(data_dir=str(tmp_path), **{"store.host": "127.0.0.1", "store.port": free_port(),
                                                        "server.allowed_hosts": ["testserver"]})
    with TestClient(create_app(settings)) as c:
        for r in (c.post("/api/ask", json={"question": QUESTION}),
                  c.post("/api/ask/stream", json={"question": QUESTION}), c.get("/healthz")):
            assert r.status_code == 503 and r.headers["content-type"] == "application/json", r.text
            assert "Chroma" in r.json()["error"] and r.json()["hint"].startswith("start it with `chroma run"), r.text


def test_widget_tokens_parse_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ASSISTANT_SERVER__WIDGET_TOKENS", '{"tok": ["https://wiki.example"]}')
    monkeypatch.setenv("ASSISTANT_SERVER__ADMIN_TOKEN", "adm")
    s = load_settings(data_dir=str(tmp_path))
    assert s.server.widget_tokens == {"tok": ["https://wiki.example"]} and s.server.admin_token == "adm"


def test_widget_js_is_served(client):
    r = client.get("/widget.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert "attachShadow" in r.text and "innerHTML" not in r.text


def test_the_citation_schema_is_the_serialised_citation():
    """AskOut's CitationOut documents what Answer.to_json(full=True) sends, field for field and in order."""
    from assistant.models import CHECK_FIELDS, CITATION_FIELDS
    from assistant.web.schemas import CitationOut

    assert tuple(CitationOut.model_fields) == CITATION_FIELDS + CHECK_FIELDS
