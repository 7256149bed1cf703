"""/metrics (Prometheus text format, summed over worker processes) and /healthz (store and keyword index
reachable and in step) of the served app (issue 15, part 4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from assistant.answering.chain import Assistant
from assistant.config import load_settings
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import articles_from_records
from assistant.web.api import create_app
from tests.support.chroma import start_chroma
from tests.support.net import free_port, serve_in_thread, stop_process
from tests.support.paths import ROOT, SEED

ADMIN = "met-admin-3f9a01"
METRICS = "met-prometheus-8c2d77"
WIDGET = "met-widget-61be0a"
WIKI = "http://wiki.example"
QUESTION = "What did Peskov say about BRICS?"
OFF_TOPIC = "What did the Pope say about the Brazilian election?"
ARTICLE = {"title": "Lantern festival returns to Harrowmere quay",
           "body": "HARROWMERE — The lantern festival returned to the quay on Saturday after a two-year pause, "
                   "the town council of Harrowmere said. Organisers counted four hundred paper lanterns on the "
                   "water and said the ferry to Oskel Island ran late into the night for the first time.",
           "source": "Harrowmere Evening Post", "published_at": "2025-05-10",
           "url": "https://harrowmere-post.example/festival"}


def _settings(data_dir, **server):
    overrides = {"server.admin_token": ADMIN, "server.metrics_token": METRICS,
                 "server.widget_tokens": {WIDGET: [WIKI]}, "server.rate_limit_per_minute": 1000,
                 "server.allowed_hosts": ["testserver"]}
    overrides.update({k if "." in k else f"server.{k}": v for k, v in server.items()})
    return load_settings(data_dir=str(data_dir), **overrides)


def scrape(client, token: str = METRICS) -> dict[tuple, float]:
    """Every sample of /metrics: (name, sorted label items) -> value."""
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def site(corpus_data_dir, tmp_path_factory):
    """A writable copy of the corpus store (the test ingests) behind the whole app."""
    data_dir = tmp_path_factory.mktemp("metrics") / "data"
    shutil.copytree(corpus_data_dir, data_dir)
    settings = _settings(data_dir)
    with TestClient(create_app(settings, Assistant(settings))) as client:
        yield client


def test_metrics_count_questions_refusals_ingests_and_time_each_route(site):
    before = scrape(site)
    assert site.post("/api/ask", json={"question": QUESTION}).json()["refused"] is False
    assert site.post("/api/ask", json={"question": OFF_TOPIC}).json()["refused"] is True
    with site.stream("POST", "/api/ask/stream", json={"question": QUESTION}) as r:
        assert r.status_code == 200 and "event: citations" in r.read().decode()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    added = site.post("/api/articles", json=ARTICLE, headers=admin).json()
    assert added["added"] == 1
    assert site.post("/api/articles", json=ARTICLE, headers=admin).json()["unchanged"] == 1
    assert site.delete(f"/api/articles/{added['ids'][0]}", headers=admin).status_code == 200
    assert site.delete("/api/articles/some-id").status_code == 401  # refused by the access policy
    assert site.get("/no/such/page/4711").status_code == 404
    after = scrape(site)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("assistant_answers_total", engine="extractive", outcome="answered") == 2
    assert delta("assistant_answers_total", engine="extractive", outcome="refused") == 1
    assert delta("assistant_ingest_articles_total", outcome="added") == 1
    assert delta("assistant_ingest_articles_total", outcome="unchanged") == 1
    assert delta("assistant_ingest_articles_total", outcome="deleted") == 1
    # Requests by route template, method and status, refusals of the access policy included.
    assert delta("assistant_http_requests_total", route="/api/ask", method="POST", status="200") == 2
    assert delta("assistant_http_requests_total", route="/api/ask/stream", method="POST", status="200") == 1
    assert delta("assistant_http_requests_total", route="/api/articles", method="POST", status="200") == 2
    assert delta("assistant_http_requests_total", route="/api/articles/{article_id}", method="DELETE",
                 status="200") == 1
    assert delta("assistant_http_requests_total", route="/api/articles/{article_id}", method="DELETE",
                 status="401") == 1
    assert delta("assistant_http_requests_total", route="(other)", method="GET", status="404") == 1
    assert not any("4711" in str(labels) for _, labels in after)  # raw paths never become labels
    # A latency histogram per route: every question in a bucket, the buckets cumulative.
    hist = "assistant_http_request_duration_seconds"
    assert delta(f"{hist}_count", route="/api/ask", method="POST") == 2
    assert delta(f"{hist}_bucket", route="/api/ask", method="POST", le="+Inf") == 2
    assert delta(f"{hist}_bucket", route="/api/ask", method="POST", le="60.0") == 2
    assert delta(f"{hist}_sum", route="/api/ask", method="POST") > 0
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in after.items()
                     if name == f"{hist}_bucket" and dict(labels).get("route") == "/api/ask")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)


def test_openai_route_answers_are_counted_too(site):
    before = scrape(site)
    r = site.post("/v1/chat/completions", json={"model": "newsroom-articles",
                                                "messages": [{"role": "user", "content": QUESTION}]})
    assert r.status_code == 200
    after = scrape(site)
    labels = {"engine": "extractive", "outcome": "answered"}
    assert value(after, "assistant_answers_total", **labels) - value(before, "assistant_answers_total", **labels) == 1
    key = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
    assert value(after, "assistant_http_requests_total", **key) - value(before, "assistant_http_requests_total", **key) == 1


def test_chat_answers_are_counted_too(corpus_assistant, corpus_data_dir):
    from gradio_client import Client

    settings = load_settings(data_dir=str(corpus_data_dir))  # no tokens: /metrics as for curl on the server
    with serve_in_thread(create_app(settings, corpus_assistant)) as url:
        def samples():
            r = httpx.get(f"{url}/metrics")
            assert r.status_code == 200
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in text_string_to_metric_families(r.text) for s in f.samples}

        before = samples()
        client = Client(f"{url}/", verbose=False)
        client.predict(QUESTION, api_name="/ask")
        client.predict(OFF_TOPIC, [], api_name="/chat")
        after = samples()
    answered, refused = ({"engine": "extractive", "outcome": o} for o in ("answered", "refused"))
    assert value(after, "assistant_answers_total", **answered) - value(before, "assistant_answers_total", **answered) == 1
    assert value(after, "assistant_answers_total", **refused) - value(before, "assistant_answers_total", **refused) == 1
    gradio = {dict(labels)["route"] for (name, labels), v in after.items()
              if name == "assistant_http_requests_total" and dict(labels)["route"].startswith("/gradio_api/")}
    assert "/gradio_api/queue/join" in gradio or any("{api_name}" in r for r in gradio), gradio


def test_metrics_take_the_metrics_or_admin_token(site):
    r = site.get("/metrics")
    assert r.status_code == 401 and "metrics token" in r.json()["error"] and r.json()["hint"]
    assert site.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert site.get("/metrics", headers={"X-Widget-Token": WIDGET, "Origin": WIKI}).status_code == 403
    assert site.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert site.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).status_code == 200
    # The metrics token reads /metrics and nothing else.
    bearer = {"Authorization": f"Bearer {METRICS}"}
    assert site.get("/api/articles", headers=bearer).status_code == 403
    assert site.post("/api/ask", json={"question": QUESTION}, headers=bearer).status_code == 403
    assert site.get("/openapi.json", headers=bearer).status_code == 403


def test_without_tokens_metrics_follow_the_anonymous_rule(corpus_assistant, corpus_data_dir):
    settings = load_settings(data_dir=str(corpus_data_dir), **{"server.allowed_hosts": ["testserver"]})
    with TestClient(create_app(settings, corpus_assistant)) as c:
        assert c.get("/metrics").status_code == 200  # curl on the server, no Origin
        assert c.get("/metrics", headers={"Origin": "http://testserver"}).status_code == 200
        assert c.get("/metrics", headers={"Origin": "http://evil.example"}).status_code == 401


WORKERS = textwrap.dedent("""
    import json, multiprocessing, sys
    from assistant.web import metrics

    def work(n):
        for _ in range(n):
            metrics.count_answer(False, "extractive")
        metrics.count_answer(True, "extractive")
        metrics.count_ingest({"added": n, "failed": [{"path": "x"}]})

    if __name__ == "__main__":
        metrics.prepare_multiprocess(sys.argv[1])  # the parent, before any worker starts
        ctx = multiprocessing.get_context("spawn")  # as uvicorn starts its workers
        workers = [ctx.Process(target=work, args=(n,)) for n in (2, 3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        data, content_type = metrics.render()
        print(json.dumps({"text": data.decode(), "type": content_type, "pids": [w.pid for w in workers]}))
""")


@pytest.mark.subprocess
def test_multiprocess_metrics_add_up_over_workers(tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(WORKERS, encoding="utf-8")
    folder = tmp_path / "prometheus"
    for _ in range(2):  # a second serve on the same folder starts from zero, not from the last run's counts
        out = subprocess.run([sys.executable, str(script), str(folder)], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(result["text"]) for s in f.samples}
        assert value(samples, "assistant_answers_total", engine="extractive", outcome="answered") == 5
        assert value(samples, "assistant_answers_total", engine="extractive", outcome="refused") == 2
        assert value(samples, "assistant_ingest_articles_total", outcome="added") == 5
        assert value(samples, "assistant_ingest_articles_total", outcome="failed") == 2
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"counter_{pid}.db" for pid in result["pids"])


# ---- /healthz ----

def test_healthz_embedded_in_step(site):
    body = site.get("/healthz").json()
    assert body["status"] == "ok" and body["store"]["reachable"] is True
    assert body["keyword_index"]["in_step"] is True and body["keyword_index"]["chunks"] == body["chunks"] > 0
    assert body["keyword_index"]["change"] == body["store"]["change"]


def test_healthz_degraded_while_the_keyword_index_cannot_be_read(corpus_data_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(corpus_data_dir, data_dir)
    for meta in (data_dir / "lexical").rglob("meta.json"):
        meta.write_text("not tantivy's meta", encoding="utf-8")
    settings = _settings(data_dir)
    with TestClient(create_app(settings, Assistant(settings))) as c:
        r = c.get("/healthz")
        body = r.json()
        assert r.status_code == 200 and body["status"] == "degraded"  # dense search still answers
        assert body["store"]["reachable"] is True and body["chunks"] > 0
        assert body["keyword_index"] == {"reachable": False, "in_step": False, "catching_up": False,
                                         "chunks": None, "change": None}
        assert "keyword index" in body["error"] and "reindex" in body["hint"]
        # the index is a cache: the next question's sync makes it anew from the store, and health is ok again
        assert c.post("/api/ask", json={"question": "Did Russia offer Iran military help?"}).status_code == 200
        deadline = time.monotonic() + 30
        while (body := c.get("/healthz").json())["status"] != "ok" and time.monotonic() < deadline:
            c.post("/api/ask", json={"question": "Did Russia offer Iran military help?"})
        assert body["status"] == "ok" and body["keyword_index"]["in_step"] is True, body


@pytest.fixture
def own_chroma(tmp_path):
    """A `chroma run` server this test may stop (conftest's chroma_server keeps its process to itself)."""
    port = free_port()
    proc = start_chroma(tmp_path / "chroma-server", port)
    try:
        yield port, proc
    finally:
        stop_process(proc)


def _until(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.2)


@pytest.mark.server
def test_healthz_follows_the_store_and_is_503_when_it_goes_away(own_chroma, tmp_path):
    port, proc = own_chroma
    server = {"store.host": "127.0.0.1", "store.port": port}
    ingest_host = _settings(tmp_path / "ingest", **server)
    assert Ingestor(ingest_host).ingest_paths([SEED]).added == 1
    # The serving app has a data dir of its own: its keyword index starts empty and must catch up.
    settings = _settings(tmp_path / "serve", **server)
    with TestClient(create_app(settings, Assistant(settings))) as c:
        first = c.get("/healthz")
        assert first.status_code == 200 and first.json()["status"] == "ok"
        assert first.json()["keyword_index"]["in_step"] or first.json()["keyword_index"]["catching_up"]

        def in_step():
            body = c.get("/healthz").json()
            assert body["status"] == "ok", body  # never degraded while it catches up normally
            return body if body["keyword_index"]["in_step"] else None

        body = _until(in_step, "in step")  # nothing asked meanwhile: /healthz's own sync brought it in step
        seed_chunks, head = body["chunks"], body["store"]["change"]
        assert body["keyword_index"]["chunks"] == seed_chunks > 0 and body["keyword_index"]["change"] == head

        # An article ingested by the other host: the index follows it within its normal sync.
        articles, _ = articles_from_records([ARTICLE], "test")
        assert Ingestor(ingest_host).ingest_articles(articles).added == 1
        body = _until(lambda: (b := in_step()) and b["store"]["change"] > head and b, "in step after the ingest")
        assert body["chunks"] > seed_chunks and body["keyword_index"]["chunks"] == body["chunks"]

        stop_process(proc)
        t0 = time.monotonic()
        down = c.get("/healthz")
        assert time.monotonic() - t0 < 30
        assert down.status_code == 503, down.text
        bad = down.json()
        assert bad["status"] == "unavailable" and bad["store"]["reachable"] is False and bad["chunks"] is None
        assert "vector store (Chroma) is unreachable" in bad["error"] and bad["hint"]
        assert str(port) not in bad["error"]  # the store's address stays in the log
        assert bad["keyword_index"]["chunks"] == body["chunks"]  # what this process still holds
