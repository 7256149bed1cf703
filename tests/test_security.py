"""The access policy over a real `python -m assistant serve` on 127.0.0.1: every route that reads the archive,
hosts, origins, preflights, proxy headers, failed-auth throttling, uploads, logs and security headers.

Each test names the finding of issue 14 it covers (docs/security.md lists them). Clients bind other loopback
source addresses (127.0.0.2, ...) where a test needs a per-IP budget of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import httpx
import pytest

from assistant.web.security import fingerprint
from tests.support.paths import ROOT
from tests.support.served import serve_copy

ADMIN = "sec-admin-5b7e21c9"
WIDGET = "sec-widget-0d4f8a"
WIKI = "http://wiki.example"
EVIL = "http://evil.example"
QUESTION = "What did Peskov say about BRICS?"
PROXY = "127.0.0.9"  # the one trusted proxy of the `tight` server


@contextlib.contextmanager
def _serve(corpus_data_dir, tmp, **env_extra: str):
    """`assistant -v serve` over a copy of the corpus store; yields (base URL, the Served server)."""
    with serve_copy(corpus_data_dir, tmp, ASSISTANT_SERVER__ADMIN_TOKEN=ADMIN,
                    ASSISTANT_SERVER__WIDGET_TOKENS=json.dumps({WIDGET: [WIKI]}), **env_extra) as served:
        yield served.url, served


@pytest.fixture(scope="module")
def open_site(corpus_data_dir, tmp_path_factory):
    """Default settings (no trusted proxy, default allowed hosts), a generous question budget."""
    with _serve(corpus_data_dir, tmp_path_factory.mktemp("sec-open"),
                ASSISTANT_SERVER__RATE_LIMIT_PER_MINUTE="1000") as site:
        yield site


@pytest.fixture(scope="module")
def tight_site(corpus_data_dir, tmp_path_factory):
    """Five questions per minute per IP; 127.0.0.9 is a trusted reverse proxy."""
    with _serve(corpus_data_dir, tmp_path_factory.mktemp("sec-tight"), ASSISTANT_SERVER__RATE_LIMIT_PER_MINUTE="5",
                ASSISTANT_SERVER__TRUSTED_PROXIES=json.dumps([PROXY])) as site:
        yield site


def _client(source: str = "127.0.0.1", **kw) -> httpx.Client:
    """An HTTP client whose connections come from `source` (any 127.x address is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60, **kw)


def _event_id(c: httpx.Client, url: str, question: str = QUESTION, **headers) -> str:
    r = c.post(f"{url}/gradio_api/call/ask", json={"data": [question]}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["event_id"]


@pytest.mark.server
def test_same_origin_page_use_works_through_gradio_and_api(open_site):
    """What already holds: the chat page's own calls (Origin = the app) and curl (no Origin) are answered."""
    url, _ = open_site
    with _client() as c:
        same = {"Origin": url}
        eid = _event_id(c, url, **same)
        stream = c.get(f"{url}/gradio_api/call/ask/{eid}", headers=same)
        assert stream.status_code == 200 and "event: complete" in stream.text and "Peskov" in stream.text
        r = c.post(f"{url}/api/ask", json={"question": QUESTION}, headers=same)
        assert r.status_code == 200 and r.json()["answer"]
        assert c.post(f"{url}/api/ask", json={"question": QUESTION}).status_code == 200
        assert c.get(f"{url}/gradio_api/info", headers=same).status_code == 200


def _archive_routes(c: httpx.Client, url: str) -> list[tuple[str, str, dict]]:
    """(method, path, json body) of every route that reads the archive or describes the app."""
    eid = _event_id(c, url)  # made same-origin; a foreign page must not read it
    join = {"data": [QUESTION, []], "fn_index": 0, "session_hash": "sec-foreign"}
    return [("POST", "/api/ask", {"question": QUESTION}), ("POST", "/api/ask/stream", {"question": QUESTION}),
            ("GET", "/api/articles", None), ("GET", "/api/quotes?speaker=Peskov", None),
            ("POST", "/gradio_api/call/ask", {"data": [QUESTION]}),
            ("GET", f"/gradio_api/call/ask/{eid}", None), ("POST", "/gradio_api/queue/join", join),
            ("GET", "/gradio_api/queue/data?session_hash=sec-foreign", None), ("POST", "/gradio_api/run/ask",
                                                                              {"data": [QUESTION]}),
            ("GET", "/gradio_api/info", None), ("GET", "/config", None), ("GET", "/gradio_api/openapi.json", None),
            ("GET", "/openapi.json", None), ("POST", "/gradio_api/upload", None)]


@pytest.mark.server
@pytest.mark.parametrize("origin", [EVIL, WIKI, "null"])
def test_a_foreign_origin_without_a_bound_token_reads_nothing(open_site, origin):
    """Finding 1: every archive route refuses a foreign Origin (even an allowed one) without its widget token,
    and only an allowed origin ever sees Access-Control-Allow-Origin, never with credentials."""
    url, _ = open_site
    with _client() as c:
        for method, path, body in _archive_routes(c, url):
            r = c.request(method, url + path, json=body, headers={"Origin": origin})
            # uploads are off for everyone (403); every other route wants the origin's widget token (401)
            assert r.status_code == (403 if path == "/gradio_api/upload" else 401), (path, r.status_code, r.text[:200])
            assert r.json()["error"], path
            assert "Peskov" not in r.text and "BRICS" not in r.text, path
            allow = r.headers.get("access-control-allow-origin")
            assert allow == (WIKI if origin == WIKI else None), (path, allow)
            assert "access-control-allow-credentials" not in r.headers


@pytest.mark.server
def test_a_widget_token_only_asks_and_only_from_its_origins(open_site):
    url, _ = open_site
    with _client() as c:
        tok = {"Authorization": f"Bearer {WIDGET}"}
        r = c.post(f"{url}/api/ask", json={"question": QUESTION}, headers={**tok, "Origin": WIKI})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == WIKI
        r = c.post(f"{url}/api/ask", json={"question": QUESTION}, headers={**tok, "Origin": EVIL})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        for path in ("/gradio_api/call/ask", "/gradio_api/queue/join"):  # Gradio is not the widget's
            r = c.post(url + path, json={"data": [QUESTION]}, headers={**tok, "Origin": WIKI})
            assert r.status_code == 403, path


@pytest.mark.server
def test_nothing_echoes_an_arbitrary_origin(open_site):
    """Finding 1: no route, public ones included, answers an unknown Origin with CORS headers."""
    url, _ = open_site
    with _client() as c:
        for path in ("/", "/widget.js", "/healthz", "/docs", "/gradio_api/info", "/config", "/api/nowhere"):
            r = c.get(url + path, headers={"Origin": EVIL})
            assert "access-control-allow-origin" not in r.headers, path
            assert "access-control-allow-credentials" not in r.headers, path


@pytest.mark.server
def test_preflights_are_answered_only_for_allowed_origins(open_site):
    """Finding 1: Gradio's layer allowed every method to every origin; now only listed origins get a preflight."""
    url, _ = open_site
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    with _client() as c:
        for path in ("/gradio_api/call/ask", "/gradio_api/queue/join", "/api/ask/stream", "/api/ask"):
            no = c.options(url + path, headers={"Origin": EVIL, **pre})
            assert no.status_code >= 400 and "access-control-allow-origin" not in no.headers, path
        ok = c.options(f"{url}/api/ask/stream", headers={"Origin": WIKI, **pre})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == WIKI
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert set(ok.headers["access-control-allow-methods"].replace(" ", "").split(",")) == {"GET", "POST"}
        assert "access-control-allow-credentials" not in ok.headers


@pytest.mark.server
def test_unknown_host_headers_are_rejected(open_site):
    """Findings 1 and 9: another Host (the DNS-rebinding pattern, Origin and Host both the attacker's) gets 400
    before any route runs; the bound host and localhost work."""
    url, _ = open_site
    port = url.rsplit(":", 1)[1]
    with _client() as c:
        rebinding = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
        for method, path, body in [("POST", "/api/ask", {"question": QUESTION}),
                                   ("POST", "/gradio_api/call/ask", {"data": [QUESTION]}), ("GET", "/", None)]:
            r = c.request(method, url + path, json=body, headers=rebinding)
            assert r.status_code == 400 and "BRICS" not in r.text, path
            assert "attacker.example" in r.json()["error"] and "server.allowed_hosts" in r.json()["hint"]
        r = c.post(f"{url}/gradio_api/call/ask", json={"data": [QUESTION]},
                   headers={"Host": "assistant.newsroom.example", "Origin": EVIL})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        assert c.get(f"{url}/healthz", headers={"Host": f"localhost:{port}"}).status_code == 200
        same = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        assert c.post(f"{url}/api/ask", json={"question": QUESTION}, headers=same).status_code == 200


@pytest.mark.server
def test_uploads_are_off_without_server_paths(open_site):
    """Finding 6: Gradio's upload route stores nothing, for anyone, and says nothing of the server's disk."""
    url, _ = open_site
    with _client() as c:
        for headers in ({}, {"Authorization": f"Bearer {ADMIN}"}, {"Origin": url}):
            r = c.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"hello")}, headers=headers)
            assert r.status_code == 403 and r.json()["error"]
            assert "/tmp" not in r.text and "gradio" not in r.text.lower()
        assert c.get(f"{url}/gradio_api/file=/etc/passwd").status_code == 403


@pytest.mark.server
def test_tokens_never_reach_the_log_even_in_query_strings(open_site):
    """Finding 7: query strings are dropped from the access log; refusals are logged with a short hash of the
    token, never the token: a wrong bearer, a widget token from a foreign origin or on an admin route, an
    unknown widget token from the widget's own origin (what the browser's wrong-token page sends)."""
    url, server = open_site
    secret = "qs-secret-7f3a9e"
    done = server.text().count('"GET /healthz?… HTTP/1.1"') + 2
    with _client() as c:
        c.get(f"{url}/healthz?token={secret}")
        c.get(f"{url}/api/articles?admin_token={secret}&limit=1")
        c.post(f"{url}/api/ask?key={secret}", json={"question": QUESTION}, headers={"Authorization": f"Bearer {secret}"})
        c.post(f"{url}/api/ask", json={"question": QUESTION}, headers={"X-Widget-Token": WIDGET, "Origin": EVIL})
        c.post(f"{url}/api/articles", json={"title": "a", "body": "b"}, headers={"Authorization": f"Bearer {WIDGET}"})
        c.post(f"{url}/api/ask", json={"question": QUESTION}, headers={"X-Widget-Token": "not-a-token", "Origin": WIKI})
        c.get(f"{url}/healthz?marker=qs-done")
    text = server.wait_for('"GET /healthz?… HTTP/1.1"', count=done)  # the last request's access line is out
    assert '"GET /api/articles?… HTTP/1.1"' in text and '"POST /api/ask?… HTTP/1.1" 401' in text
    assert f"unknown token {fingerprint(secret)}" in text and f"unknown token {fingerprint('not-a-token')}" in text
    assert secret not in text and WIDGET not in text and ADMIN not in text and "not-a-token" not in text


@pytest.mark.server
def test_proxy_headers_are_ignored_from_loopback_by_default(open_site):
    """Finding 3: with no trusted proxy, X-Forwarded-For from 127.0.0.1 is not the client: the log shows the
    real peer (the per-IP budget is the real peer's too: see the tight-budget test)."""
    url, server = open_site
    with _client() as c:
        r = c.get(f"{url}/api/articles?spoof=1", headers={"X-Forwarded-For": "203.0.113.77"})
        assert r.status_code == 200
    text = server.wait_for('"GET /api/articles?… HTTP/1.1" 200')
    assert "203.0.113.77" not in text and "127.0.0.1:" in text


@pytest.mark.server
def test_forwarded_for_does_not_reset_the_per_ip_limit(tight_site):
    """Finding 3: a client behind no proxy cannot buy fresh budgets with X-Forwarded-For, on /api or Gradio."""
    url, _ = tight_site
    with _client("127.0.0.2") as c:
        codes = [c.post(f"{url}/api/ask", json={"question": QUESTION},
                        headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(5)]
        assert codes == [200] * 5
        r = c.post(f"{url}/gradio_api/call/ask", json={"data": [QUESTION]},
                   headers={"X-Forwarded-For": "198.51.100.99"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json() == {"error": "too many questions; slow down", "hint": r.json()["hint"]}


@pytest.mark.server
def test_a_trusted_proxy_names_the_client(tight_site):
    """server.trusted_proxies: from the listed proxy, X-Forwarded-For is the client (each its own budget, and
    the access log shows it)."""
    url, server = tight_site
    with _client(PROXY) as c:
        for i in range(7):  # more than one client's budget of 5, spread over seven clients
            r = c.post(f"{url}/api/ask?via-proxy=1", json={"question": QUESTION},
                       headers={"X-Forwarded-For": f"192.0.2.{i + 10}"})
            assert r.status_code == 200, (i, r.text)
    assert "192.0.2.16:" in server.wait_for("192.0.2.16:")



@pytest.mark.server
def test_failed_authentications_are_throttled(tight_site):
    """Finding 4: wrong tokens spend the IP's budget (429 + Retry-After after 5), and while it is spent not
    even the right admin token is compared, so guessing learns nothing."""
    url, _ = tight_site
    with _client("127.0.0.3") as c:
        codes = [c.post(f"{url}/api/articles", json={"title": "t", "body": "b"},
                        headers={"Authorization": f"Bearer guess-{i}"}).status_code for i in range(8)]
        assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3
        r = c.get(f"{url}/api/articles", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        # A missing admin token on a write route is a failed authentication too.
    with _client("127.0.0.4") as c:
        codes = [c.delete(f"{url}/api/articles/x").status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]
    with _client("127.0.0.5") as c:  # another IP is not affected, and the admin is never throttled
        codes = [c.get(f"{url}/api/articles", headers={"Authorization": f"Bearer {ADMIN}"}).status_code
                 for _ in range(8)]
        assert codes == [200] * 8


@pytest.mark.server
def test_security_headers_and_csp(open_site):
    """Finding 8: CSP (inline scripts by hash only, frame-ancestors), nosniff, Referrer-Policy, X-Frame-Options."""
    url, _ = open_site
    with _client() as c:
        page = c.get(f"{url}/")
        csp = page.headers["content-security-policy"]
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "'sha256-" in script_src
        assert "frame-ancestors 'self'" in csp and "object-src 'none'" in csp and "connect-src 'self'" in csp
        assert page.headers["x-frame-options"] == "SAMEORIGIN"
        for path in ("/", "/api/articles", "/widget.js", "/docs", "/gradio_api/info"):
            r = c.get(url + path)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["referrer-policy"] == "no-referrer", path
            assert "content-security-policy" in r.headers, path
        docs_csp = c.get(f"{url}/docs").headers["content-security-policy"]
        assert "'unsafe-eval'" not in docs_csp and "'unsafe-inline'" not in docs_csp.split("style-src")[0]


@pytest.mark.server
def test_gradio_errors_are_our_json(open_site):
    """Finding 8: a crash inside Gradio's routes is {error, hint}, never Python's text."""
    url, _ = open_site
    with _client() as c:
        r = c.post(f"{url}/gradio_api/queue/join", json={"data": ["x"], "fn_index": 999, "session_hash": "e"})
        assert r.status_code == 500 and r.json() == {"error": "internal error",
                                                      "hint": "the server log has the details"}
    with _client() as c:  # uvicorn closes a connection whose request crashed: a new one
        eid = c.post(f"{url}/gradio_api/call/ask", json={"data": []}).json()["event_id"]
        stream = c.get(f"{url}/gradio_api/call/ask/{eid}").text
        assert "event: error" in stream and "ValueError" not in stream and "input values" not in stream


@pytest.mark.server
def test_docs_and_redoc_load_their_assets_locally(open_site):
    """Finding 10: /docs and /redoc reference only this server's files (fastapi-offline), which are served."""
    import re

    url, _ = open_site
    with _client() as c:
        for page in ("/docs", "/redoc"):
            text = c.get(url + page).text
            assets = re.findall(r'(?:src|href)="([^"]+)"', text)
            assert assets and all(a.startswith("/") for a in assets), assets
            for a in assets:
                assert c.get(url + a).status_code == 200, a
            assert "cdn" not in text.lower()


@pytest.mark.server
def test_unrepresentable_dates_are_the_callers_error(open_site):
    """Finding 5: a day the calendar cannot shift ("last week" on 0001-01-01) or that does not exist is 4xx
    {error, hint}, never a 500."""
    url, _ = open_site
    with _client() as c:
        for today, question, status in (("0001-01-01", "What did Russia say last week?", 400),
                                        ("0001-01-01", "What happened yesterday?", 400),
                                        ("9999-12-31", "What happened in December?", 400),
                                        ("2025-02-30", "What did Russia say last week?", 422),
                                        ("2025-06-24", "What did Russia say last week?", 200)):
            r = c.post(f"{url}/api/ask", json={"question": question, "filters": {"today": today}})
            assert r.status_code == status, (today, question, r.text)
            if status != 200:
                assert r.json()["error"] and r.json()["hint"] and "Traceback" not in r.text
                assert today in r.json()["error"]


def test_settings_defaults_trust_no_proxy_and_know_their_hosts():
    from assistant.config import ServerSettings
    from assistant.web.security import default_allowed_hosts

    s = ServerSettings()
    assert s.trusted_proxies == [] and s.allowed_hosts == [] and s.frame_ancestors == ["'self'"]
    assert {"127.0.0.1", "localhost"} <= set(default_allowed_hosts("127.0.0.1"))
    assert "10.1.2.3" in default_allowed_hosts("10.1.2.3")
    assert "0.0.0.0" not in default_allowed_hosts("0.0.0.0")


@pytest.mark.server
def test_token_compare_is_exact(open_site):
    """What already holds: tokens are compared whole and in constant time (hmac.compare_digest); a prefix,
    another case or an extension of the admin token is an unknown token."""
    url, _ = open_site
    with _client("127.0.0.6") as c:
        for wrong in (ADMIN[:-1], ADMIN.upper(), ADMIN + "x", WIDGET[:4]):
            r = c.get(f"{url}/api/articles", headers={"Authorization": f"Bearer {wrong}"})
            assert r.status_code == 401 and r.json()["error"] == "unknown token", wrong
        assert c.get(f"{url}/api/articles", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


@pytest.mark.server
def test_no_path_reads_files_outside_the_app(open_site):
    """What already holds: no static or Gradio file route serves a file by traversal."""
    url, _ = open_site
    with _client() as c:
        # Gradio's file and asset routes refuse (403); the others have no such file or route (404).
        for path, status in (("/static-offline-docs/..%2f..%2f..%2f..%2fetc%2fpasswd", 404),
                             ("/static-offline-docs/../../etc/passwd", 404), ("/assets/..%2f..%2f..%2fetc%2fpasswd", 403),
                             ("/static/..%2f..%2f..%2fetc%2fpasswd", 403), ("/gradio_api/file=/etc/passwd", 403),
                             ("/gradio_api/file=..%2f..%2f..%2fetc%2fpasswd", 403), ("/file=/etc/passwd", 404),
                             ("/api/articles/..%2f..%2fetc%2fpasswd", 404)):
            r = c.get(url + path)
            assert r.status_code == status, (path, r.status_code)
            assert "root:" not in r.text, path


@pytest.mark.server
@pytest.mark.subprocess
def test_serve_prints_serving_once_bound_and_a_taken_port_is_one_line(open_site, tmp_path):
    """`assistant serve` on a port another program holds exits 1 with one line naming the fix, before loading
    any model; the served app printed "Serving ..." once, only after its port was bound and the app started."""
    import socket

    _, server = open_site
    text = server.text()
    assert text.count("Serving the assistant on http://127.0.0.1:") == 1
    assert text.index("Application startup complete") < text.index("Serving the assistant")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "assistant", "serve", "--data-dir", str(tmp_path), "--port",
                            str(port)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert r.returncode == 1 and "Serving" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0] and "PORT=" in lines[0]


@pytest.mark.subprocess
def test_make_run_takes_port_and_host():
    r = subprocess.run(["make", "-n", "run", "PORT=7861", "HOST=0.0.0.0"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "assistant serve --host 0.0.0.0 --port 7861" in r.stdout


def test_same_origin_compares_host_and_port():
    from assistant.web.security import same_origin

    assert same_origin("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert same_origin("https://assistant.example", "assistant.example:443")
    assert same_origin("http://[::1]:7860", "[::1]:7860")
    for origin, host in (("http://127.0.0.1:7861", "127.0.0.1:7860"), ("http://127.0.0.1", "127.0.0.1:7860"),
                         ("https://assistant.example", "assistant.example:80"), ("null", "127.0.0.1:7860"),
                         ("http://evil.example", "assistant.example"), ("ftp://assistant.example", "assistant.example"),
                         ("http://a.example:x", "a.example")):
        assert not same_origin(origin, host), (origin, host)
