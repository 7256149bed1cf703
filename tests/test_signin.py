"""Who is asking (issue 23): the sign-in proxy's user header, personal keys and roles, `server.require_login`.

Real HTTP on loopback: the app served by uvicorn in this process (over a copy of the corpus store), a sign-in
proxy (tests/support/signin_proxy.py) that connects from 127.0.0.3, the one trusted proxy, and clients that
connect from 127.0.0.1 (anyone else on the network).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import httpx
import openai
import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.config import load_settings
from assistant.index.archive import Archive
from tests.support.net import serve_in_thread
from tests.support.paths import ROOT
from tests.support.served import serve, server_env
from tests.support.signin_proxy import PROXY_ADDRESS, signin_proxy

ADMIN = "signin-admin-7c1e9a"
WIDGET = "signin-widget-42d0b1"
WIKI = "http://wiki.example"
QUESTION = "Did Russia offer Iran military help?"
ARCHIVE_ROUTES = [("POST", "/api/ask"), ("GET", "/api/articles"), ("GET", "/gradio_api/info"), ("GET", "/config"),
                  ("GET", "/v1/models"), ("GET", "/openapi.json"), ("GET", "/")]


def _settings(data_dir, **server):
    server = {"admin_token": ADMIN, "widget_tokens": {WIDGET: [WIKI]}, "trusted_proxies": [PROXY_ADDRESS],
              "rate_limit_per_minute": 1000, **server}
    return load_settings(data_dir=str(data_dir), **{f"server.{k}": v for k, v in server.items()})


@pytest.fixture(scope="module")
def closed(corpus_data_dir, tmp_path_factory):
    """The app with `require_login` on, over a copy of the corpus store: (url, settings, users)."""
    from assistant.answering.chain import Assistant
    from assistant.web.api import create_app

    data_dir = tmp_path_factory.mktemp("signin") / "data"
    shutil.copytree(corpus_data_dir, data_dir)
    settings = _settings(data_dir, require_login=True)
    assistant = Assistant(settings)
    with serve_in_thread(create_app(settings, assistant)) as url:
        yield url, settings, assistant.archive.users


def _call(c: httpx.Client, url: str, method: str, path: str, **kw) -> httpx.Response:
    body = {"json": {"question": QUESTION}} if method == "POST" else {}
    return c.request(method, url + path, **body, **kw)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_require_login_defaults_to_closed_off_loopback_and_open_on_it(tmp_path):
    assert load_settings(data_dir=str(tmp_path)).server.login_required() is False  # 127.0.0.1: make run
    for host in ("0.0.0.0", "::", "10.1.2.3", "assistant.newsroom.example"):
        assert load_settings(data_dir=str(tmp_path), **{"server.host": host}).server.login_required() is True
    assert load_settings(data_dir=str(tmp_path), **{"server.host": "::1"}).server.login_required() is False
    assert load_settings(data_dir=str(tmp_path), **{"server.host": "0.0.0.0",
                                                    "server.require_login": False}).server.login_required() is False


def test_anonymous_requests_get_401_everywhere_but_the_public_routes(closed):
    url, _, _ = closed
    with httpx.Client(timeout=60) as c:
        for method, path in ARCHIVE_ROUTES:
            r = _call(c, url, method, path)
            assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert "needs a sign-in" in _call(c, url, "POST", "/api/ask").json()["error"]
        page = c.get(url + "/", headers={"Accept": "text/html"})  # a browser gets the sign-in hint as a page
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        assert "Sign in to read the archive" in page.text and "Peskov" not in page.text
        assert c.get(url + "/healthz").status_code == 200
        assert c.get(url + "/widget.js").status_code == 200
        hint = c.get(url + "/signin")
        assert hint.status_code == 200 and "personal key" in hint.text
        # a widget token still asks, from its wiki, as before
        r = c.post(url + "/api/ask", json={"question": QUESTION}, headers={"Origin": WIKI, **_bearer(WIDGET)})
        assert r.status_code == 200 and r.json()["citations"]


def test_the_user_header_is_believed_from_the_trusted_proxy_only(closed):
    url, _, _ = closed
    forged = {"X-Forwarded-User": "mallory", "X-Forwarded-Email": "mallory@newsroom.example"}
    with httpx.Client(timeout=60) as direct:  # from 127.0.0.1: not a trusted proxy
        assert direct.post(url + "/api/ask", json={"question": QUESTION}, headers=forged).status_code == 401
    with signin_proxy(url, "alice@newsroom.example") as proxied, httpx.Client(timeout=60) as c:
        r = c.post(proxied + "/api/ask", json={"question": QUESTION}, headers=forged)
        assert r.status_code == 200 and r.json()["citations"]
        assert c.get(proxied + "/api/articles").status_code == 200
        # a signed-in reader may read, not change: sources and deletes are for admins
        assert c.get(proxied + "/api/sources").status_code == 403
        assert c.delete(proxied + "/api/articles/nothing-here").status_code == 403
    # the e-mail header alone names the user too, from the trusted address
    with httpx.Client(transport=httpx.HTTPTransport(local_address=PROXY_ADDRESS), timeout=60) as proxy:
        assert proxy.get(url + "/api/articles", headers={"X-Forwarded-Email": "bo@newsroom.example"}).status_code == 200
        assert proxy.get(url + "/api/articles").status_code == 401  # the proxy itself, with nobody signed in


def test_reader_and_admin_keys_and_their_removal(closed):
    url, _, users = closed
    reader, admin = users.add("reader-ria", "reader"), users.add("admin-ade", "admin")
    try:
        with httpx.Client(timeout=60) as c:
            assert c.post(url + "/api/ask", json={"question": QUESTION}, headers=_bearer(reader)).status_code == 200
            assert c.get(url + "/api/articles", headers=_bearer(reader)).status_code == 200
            assert c.get(url + "/gradio_api/info", headers=_bearer(reader)).status_code == 200
            refused = c.get(url + "/api/sources", headers=_bearer(reader))
            assert refused.status_code == 403 and "reader" in refused.json()["error"]
            assert c.delete(url + "/api/articles/x", headers=_bearer(reader)).status_code == 403
            assert c.get(url + "/metrics", headers=_bearer(reader)).status_code == 403
            assert c.get(url + "/api/sources", headers=_bearer(admin)).status_code == 200
            assert c.get(url + "/metrics", headers=_bearer(admin)).status_code == 200
            # a key with one character changed, or a made-up one in the key format, is no key
            wrong = reader[:-1] + ("A" if reader[-1] != "A" else "B")
            assert c.get(url + "/api/articles", headers=_bearer(wrong)).status_code == 401
            assert users.remove("reader-ria") is True
            gone = c.get(url + "/api/articles", headers=_bearer(reader))
            assert gone.status_code == 401 and "removed" in gone.json()["error"]
    finally:
        users.remove("reader-ria")
        users.remove("admin-ade")


def test_a_signed_in_user_listed_as_admin_is_an_admin_and_the_trail_names_them(closed):
    url, settings, users = closed
    users.add("chief@newsroom.example", "admin")
    article = {"title": "Lorn Island ferry timetable changes", "source": "The Lorn Gazette (fictional)",
               "url": "https://gazette.example/ferry", "body": "The Lorn Island ferry will sail three times a "
               "day from March, the harbour board of the fictional island announced on Monday. " * 3}
    try:
        with signin_proxy(url, "chief@newsroom.example") as proxied, httpx.Client(timeout=60) as c:
            assert c.get(proxied + "/api/sources").status_code == 200
            added = c.post(proxied + "/api/articles", json=article)
            assert added.status_code == 200, added.text
            [article_id] = added.json()["ids"]
            assert c.delete(f"{url}/api/articles/{article_id}", headers=_bearer(ADMIN)).status_code == 200
    finally:
        users.remove("chief@newsroom.example")
    trail = Archive(settings).audit.entries(limit=10)
    assert [(e.action, e.actor) for e in trail[:2]] == [("delete", "admin token"),
                                                      ("ingest", "chief@newsroom.example")]


def test_openai_client_with_a_personal_key_plain_and_streamed(closed):
    url, _, users = closed
    key = users.add("oai-reader", "reader")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="newsroom-articles",
                                               messages=[{"role": "user", "content": QUESTION}])
        assert "[1]" in reply.choices[0].message.content and reply.choices[0].message.model_extra["citations"]
        text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
            model="newsroom-articles", messages=[{"role": "user", "content": QUESTION}], stream=True)
            if chunk.choices)
        assert "[1]" in text
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-anything", max_retries=0).models.list()
    finally:
        users.remove("oai-reader")


def test_an_open_server_takes_any_key_on_v1_and_personal_keys_everywhere(corpus_data_dir, tmp_path):
    """require_login off (loopback) and no tokens: an OpenAI client's placeholder key reads like no key (with
    tokens configured it is an unknown token, tests/test_openai_api.py); personal keys and roles still hold."""
    from assistant.answering.chain import Assistant
    from assistant.web.api import create_app

    shutil.copytree(corpus_data_dir, tmp_path / "data")
    settings = _settings(tmp_path / "data", admin_token=None, widget_tokens={})
    assistant = Assistant(settings)
    reader = assistant.archive.users.add("open-reader", "reader")
    with serve_in_thread(create_app(settings, assistant)) as url, httpx.Client(timeout=60) as c:
        models = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-no-key-needed", max_retries=0).models.list()
        assert [m.id for m in models] == ["newsroom-articles"]
        assert c.get(url + "/api/articles").status_code == 200  # anonymous, as before
        assert c.get(url + "/api/articles", headers=_bearer("made-up")).status_code == 401  # not on /api
        assert c.get(url + "/v1/models", headers=_bearer(reader[:-2] + "xx")).status_code == 401  # a bad key
        assert c.get(url + "/api/sources", headers=_bearer(reader)).status_code == 403


def test_users_cli_add_list_remove_and_bad_input(tmp_path):
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path)]
    added = runner.invoke(cli, [*base, "users", "add", "dana", "--role", "admin", "--json"])
    assert added.exit_code == 0, added.output
    out = json.loads(added.stdout)
    assert set(out) == {"name", "role", "key"} and out["name"] == "dana" and out["role"] == "admin"
    users = Archive(load_settings(data_dir=str(tmp_path))).users
    assert users.verify(out["key"]).name == "dana"
    listed = json.loads(runner.invoke(cli, [*base, "users", "list", "--json"]).stdout)
    assert listed == {"users": [{"name": "dana", "role": "admin", "created": listed["users"][0]["created"]}]}
    assert out["key"] not in runner.invoke(cli, [*base, "users", "list"]).output  # keys are never listed
    # the stored form is a scrypt hash, never the key
    stored = users.chroma.call("read", "get", log_collection=True, where={"kind": "user"}, include=["metadatas"])
    assert out["key"] not in json.dumps(stored["metadatas"]) and stored["metadatas"][0]["hash"].startswith("scrypt$")

    again = runner.invoke(cli, [*base, "users", "add", "dana"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad_role = runner.invoke(cli, [*base, "users", "add", "eve", "--role", "owner"])
    assert bad_role.exit_code == 2 and "owner" in bad_role.output
    bad_name = runner.invoke(cli, [*base, "users", "add", "eve smith"])
    assert bad_name.exit_code == 1 and "not a user name" in bad_name.output
    assert runner.invoke(cli, [*base, "users", "remove", "nobody"]).exit_code == 1
    removed = runner.invoke(cli, [*base, "users", "remove", "dana"])
    assert removed.exit_code == 0 and users.verify(out["key"]) is None
    assert json.loads(runner.invoke(cli, [*base, "users", "list", "--json"]).stdout) == {"users": []}
    trail = [(e.action, e.target) for e in Archive(load_settings(data_dir=str(tmp_path))).audit.entries()]
    assert trail == [("user.remove", "dana"), ("user.add", "dana")]  # newest first; failed commands leave none
    assert all(e.actor.startswith("cli:") for e in Archive(load_settings(data_dir=str(tmp_path))).audit.entries())


@pytest.mark.server
def test_a_removed_key_is_refused_at_once_on_two_servers_of_one_chroma(chroma_server, tmp_path):
    """Two `serve` processes (two machines) on one Chroma server: a key removed by the CLI fails on both at once."""
    host, port = chroma_server
    env = server_env(ASSISTANT_STORE__HOST=host, ASSISTANT_STORE__PORT=str(port),
                     ASSISTANT_SERVER__REQUIRE_LOGIN="true")

    def assistant(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "assistant", *args, "--data-dir", str(tmp_path / "cli")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    added = assistant("users", "add", "wren", "--json")
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["key"]
    with serve(tmp_path / "a", tmp_path / "a.log", env) as a, serve(tmp_path / "b", tmp_path / "b.log", env) as b, \
            httpx.Client(timeout=60) as c:
        assert "Sign-in required" in a.text()
        for served in (a, b):
            assert c.get(served.url + "/v1/models", headers=_bearer(key)).status_code == 200
            assert c.get(served.url + "/v1/models").status_code == 401
        assert assistant("users", "remove", "wren").returncode == 0
        for served in (a, b):
            assert c.get(served.url + "/v1/models", headers=_bearer(key)).status_code == 401


@pytest.mark.browser
def test_the_chat_shows_who_is_signed_in(closed):
    from playwright import sync_api

    url, _, _ = closed
    with signin_proxy(url, "alice@newsroom.example") as proxied, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(proxied + "/")
            sync_api.expect(page.locator("#signed-in")).to_contain_text("Signed in as alice@newsroom.example",
                                                                        timeout=60_000)
            page.locator("#question textarea").fill(QUESTION)
            page.locator("#question textarea").press("Enter")
            sync_api.expect(page.locator("#sources")).to_contain_text("BRICS", timeout=60_000)
        finally:
            browser.close()


def test_odd_credentials_are_refused_plainly(closed):
    """The bad-input matrix for the new surface (docs/reliability.md, row 9): every odd credential is a 401
    with a JSON error, never a crash, and a long or hostile name from the proxy stays a plain reader."""
    url, _, users = closed
    with httpx.Client(timeout=60) as c:
        for value in ("Bearer", "Bearer nak_", "Bearer nak_zzzzzzzzzzzz_" + "a" * 40, "Bearer " + "nak_" + "x" * 10_000,
                      "Basic YWxpY2U6c2VjcmV0", "bearer"):
            r = c.get(url + "/api/articles", headers={"Authorization": value})
            assert r.status_code == 401 and r.json()["error"], (value[:30], r.status_code)
    users.add("ops@newsroom.example", "admin")
    try:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=PROXY_ADDRESS), timeout=60) as proxy:
            for name in ("x" * 5000, "<script>alert(1)</script>", "ops@newsroom.example.evil", "ops@newsroom.example"):
                r = proxy.get(url + "/api/sources", headers={"X-Forwarded-User": name})
                # a reader at most: only the exact name the admin added is an admin
                assert r.status_code == (200 if name == "ops@newsroom.example" else 403), name[:30]
    finally:
        users.remove("ops@newsroom.example")


def test_odd_users_commands_are_one_line_errors(tmp_path):
    runner = CliRunner()
    for args, code, says in ((["users", "add", "a" * 200], 1, "not a user name"),
                             (["users", "add", ""], 1, "not a user name"),
                             (["users", "add", "-x"], 2, "No such option"),
                             (["users", "remove"], 2, "Missing argument"),
                             (["users", "list", "--json", "extra"], 2, "unexpected extra argument")):
        r = runner.invoke(cli, ["--data-dir", str(tmp_path), *args])
        assert r.exit_code == code and says in r.output and "Traceback" not in r.output, (args, r.output)


def test_a_backup_carries_the_users_and_their_keys_work_after_restore(tmp_path):
    runner = CliRunner()
    here, elsewhere, file = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "archive.jsonl.gz"
    key = json.loads(runner.invoke(cli, ["--data-dir", str(here), "users", "add", "eli", "--json"]).stdout)["key"]
    assert runner.invoke(cli, ["--data-dir", str(here), "backup", str(file)]).exit_code == 0
    for _ in range(2):  # restoring twice doubles nothing
        restored = runner.invoke(cli, ["--data-dir", str(elsewhere), "restore", str(file)])
        assert restored.exit_code == 0, restored.output
    users = Archive(load_settings(data_dir=str(elsewhere))).users
    assert [u.name for u in users.all()] == ["eli"] and users.verify(key).name == "eli"
