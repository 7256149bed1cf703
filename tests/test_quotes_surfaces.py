"""Who said what on the surfaces (issue 24 part 3): `assistant quotes` and `GET /api/quotes` over the fictional
quote articles (tests/support/quotes.py), with the access policy of /api/ask."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from assistant.cli import cli
from assistant.config import load_settings
from assistant.index.quotebook import QUOTE_FIELDS
from assistant.ingest.ingestor import Ingestor
from assistant.web.api import create_app
from tests.support.quotes import dated_articles, gold_of

ADMIN = "quotes-admin-7f3a"
WIDGET = "quotes-widget-19be"
WIKI = "http://wiki.example"
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    data = tmp_path_factory.mktemp("quotes") / "data"
    articles = dated_articles()
    Ingestor(load_settings(data_dir=str(data))).ingest_articles(articles)
    return data, articles


def run(data, *args) -> dict:
    res = CliRunner().invoke(cli, ["quotes", "--json", "--data-dir", str(data), *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def joint_speaker(articles) -> tuple[str, str]:
    """(a person who also speaks jointly with another, that joint speaker), from the labels."""
    full = next(g["speaker"] for a in articles for g in gold_of(a) if g["speaker"] and " and " in g["speaker"])
    return full.split(" and ")[0], full


def test_cli_quotes_json_shape_order_and_verbatim_spans(archive):
    data, articles = archive
    out = run(data, "--limit", "1000")
    assert list(out) == ["quotes"] and out["quotes"]
    by_id = {a.id: a for a in articles}
    assert len(out["quotes"]) == sum(len(gold_of(a)) for a in articles)
    for q in out["quotes"]:
        assert tuple(q) == QUOTE_FIELDS == ("speaker", "quote", "kind", "article_id", "title", "source",
                                            "published_at", "url", "start", "end")
        assert q["quote"] == by_id[q["article_id"]].body[q["start"]:q["end"]] and q["kind"] in ("direct", "reported")
    days = [q["published_at"] for q in out["quotes"]]
    assert days == sorted(days, reverse=True)
    assert len(run(data, "--limit", "2")["quotes"]) == 2


def test_cli_quotes_filters(archive):
    data, articles = archive
    one, full = joint_speaker(articles)
    expected = sorted(g["quote"] for a in articles for g in gold_of(a)
                      if g["speaker"] and one in g["speaker"].split(" and "))
    for name in (one.split()[-1], one.lower()):
        got = run(data, "--speaker", name, "--limit", "1000")["quotes"]
        assert sorted(q["quote"] for q in got) == expected and {q["speaker"] for q in got} >= {one, full}
    about = run(data, "--about", "quota court")["quotes"]
    by_id = {a.id: a for a in articles}
    assert "the association would take the quota to court" in [q["quote"] for q in about]
    assert all("court" in by_id[q["article_id"]].body for q in about)  # in the quote or in its sentence
    assert run(data, "--about", "quota zeppelin") == {"quotes": []}
    window = run(data, "--since", "2025-03-02", "--until", "2025-03-04", "--limit", "1000")["quotes"]
    assert window and {q["published_at"] for q in window} <= {"2025-03-02", "2025-03-03", "2025-03-04"}
    post = run(data, "--source", "vellmar", "--limit", "1000")["quotes"]
    assert post and {q["source"] for q in post} == {"Vellmar Post"}
    assert run(data, "--speaker", "Nobody Atall") == {"quotes": []}
    plain = CliRunner().invoke(cli, ["quotes", "--data-dir", str(data), "--speaker", one])
    assert plain.exit_code == 0 and one in plain.stdout and expected[0] in plain.stdout


@pytest.mark.parametrize("flag,value", [("--since", "yesterday"), ("--until", "2025-02-30")])
def test_cli_quotes_bad_dates_are_usage_errors(archive, flag, value):
    data, _ = archive
    res = CliRunner().invoke(cli, ["quotes", "--json", "--data-dir", str(data), flag, value])
    assert res.exit_code == 2 and res.stdout == "" and "Traceback" not in res.output
    [line] = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: invalid {flag}") and value in line and "YYYY-MM-DD" in line


def _client(data, **server) -> TestClient:
    overrides = {"server.admin_token": ADMIN, "server.widget_tokens": {WIDGET: [WIKI]},
                 "server.rate_limit_per_minute": 1000, "server.allowed_hosts": ["testserver"]}
    overrides.update({f"server.{k}": v for k, v in server.items()})
    return TestClient(create_app(load_settings(data_dir=str(data), **overrides)))


def test_api_quotes_same_filters_and_shape_as_the_cli(archive):
    data, articles = archive
    one, _ = joint_speaker(articles)
    with _client(data) as c:
        r = c.get("/api/quotes", params={"speaker": one.split()[-1], "limit": 500})
        assert r.status_code == 200
        assert r.json() == run(data, "--speaker", one.split()[-1], "--limit", "500")
        r = c.get("/api/quotes", params={"since": "2025-03-02", "until": "2025-03-04", "source": ["orrin", "calder"]})
        assert r.json() == run(data, "--since", "2025-03-02", "--until", "2025-03-04", "--source", "orrin",
                               "--source", "calder")
        assert r.json()["quotes"]
        bad = c.get("/api/quotes", params={"since": "2025-13-01"})
        assert bad.status_code == 400 and set(bad.json()) == {"error", "hint"} and "since" in bad.json()["error"]
        assert c.get("/api/quotes", params={"limit": 0}).status_code == 422
        assert "/api/quotes" in c.get("/openapi.json").json()["paths"]


def test_api_quotes_follows_the_access_policy_of_ask(archive):
    data, _ = archive
    with _client(data) as c:
        tok = {"Authorization": f"Bearer {WIDGET}"}
        assert c.get("/api/quotes").status_code == 200  # no Origin, no token: curl on an open server
        foreign = c.get("/api/quotes", headers={"Origin": WIKI})
        assert foreign.status_code == 401 and "quotes" not in foreign.json()
        ok = c.get("/api/quotes", headers={**tok, "Origin": WIKI})
        assert ok.status_code == 200 and ok.json()["quotes"] and ok.headers["access-control-allow-origin"] == WIKI
        assert c.get("/api/quotes", headers={**tok, "Origin": EVIL}).status_code == 403
        assert c.get("/api/articles", headers={**tok, "Origin": WIKI}).status_code == 403  # still only asks
    with _client(data, require_login=True) as c:
        r = c.get("/api/quotes")
        assert r.status_code == 401 and "quotes" not in r.json()
        assert c.get("/api/quotes", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    with _client(data, rate_limit_per_minute=2) as c:
        h = {"X-Widget-Token": WIDGET, "Origin": WIKI}
        assert [c.get("/api/quotes", headers=h).status_code for _ in range(3)] == [200, 200, 429]
