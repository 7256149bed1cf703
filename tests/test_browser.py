"""The widget and the chat UI in a real Chromium (Debian's, driven by Playwright), against `assistant serve`.

The app runs as `python -m assistant -v serve` on one loopback port; the test wiki pages come from other
ports (other origins), one allowed by the widget token and one not.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, stop_process, wait_for_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (/usr/bin/chromium); run `make test-deps`",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed; run `make test-deps`")

ADMIN = "browser-admin-7c1e52"
WIDGET = "browser-widget-94d0b3"
QUESTION = "Did Russia offer Iran military help?"
XSS = "<img src=x onerror=alert(1)>"
# Screenshots for the README are refreshed only on request (ASSISTANT_SCREENSHOTS=1), so a test run
# leaves the work tree clean; otherwise they go to a temp folder and are still taken (and so exercised).
DOCS = ROOT / "docs" if os.environ.get("ASSISTANT_SCREENSHOTS") else Path(tempfile.mkdtemp(prefix="shots-"))

WIKI_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Team wiki: Middle East desk</title>
<style>
  /* A wiki stylesheet that would wreck any widget living in the page's own DOM. */
  body {{ font-family: Georgia, serif; margin: 0; background: #f6f4ef; }}
  * {{ color: #7a1f1f !important; }}
  button, textarea {{ display: none; }}
  main {{ max-width: 760px; margin: 0 auto; padding: 24px; }}
  h1 {{ font-size: 30px; }}
</style></head>
<body><main>
  <h1>Middle East desk</h1>
  <p>Style notes, contacts and background for the Iran and Gulf beats. Check every claim against two
  sources; the assistant below quotes the articles our archive holds.</p>
  <h2>Contacts</h2><ul><li>Tehran stringer: see the locked sheet</li><li>Moscow bureau: +7 ...</li></ul>
</main>
<script src="{app}/widget.js" data-token="{token}" data-title="Ask the newsroom" async></script>
</body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _static_server(folder: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    port = free_port()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


@contextlib.contextmanager
def _serve_site(corpus_data_dir: Path, tmp: Path, **env_extra: str):
    """`assistant -v serve` (subprocess) over a copy of the corpus store, plus a wiki origin its widget token
    allows and one it does not; yields a dict of URLs. `env_extra` adds settings (ASSISTANT_...)."""
    data_dir = tmp / "data"
    shutil.copytree(corpus_data_dir, data_dir)
    pages = tmp / "pages"
    pages.mkdir()
    wiki, wiki_port = _static_server(pages)
    other, other_port = _static_server(pages)
    app_port = free_port()
    app = f"http://127.0.0.1:{app_port}"
    (pages / "wiki.html").write_text(WIKI_PAGE.format(app=app, token=WIDGET), encoding="utf-8")
    (pages / "wrong-token.html").write_text(WIKI_PAGE.format(app=app, token="not-a-token"), encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", ASSISTANT_SERVER__ADMIN_TOKEN=ADMIN,
               ASSISTANT_SERVER__WIDGET_TOKENS=json.dumps({WIDGET: [f"http://127.0.0.1:{wiki_port}"]}),
               ASSISTANT_SERVER__RATE_LIMIT_PER_MINUTE="100", **env_extra)
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "assistant", "-v", "serve", "--data-dir", str(data_dir),
                                 "--port", str(app_port)], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_for_port(app_port, 180, proc)
        yield {"app": app, "wiki": f"http://127.0.0.1:{wiki_port}/wiki.html",
               "wrong_token": f"http://127.0.0.1:{wiki_port}/wrong-token.html",
               "other": f"http://127.0.0.1:{other_port}/wiki.html", "log": log_path}
    finally:
        stop_process(proc, 15)
        wiki.shutdown()
        other.shutdown()


@pytest.fixture(scope="module")
def site(corpus_data_dir, tmp_path_factory):
    """The app with its default (extractive) engine."""
    with _serve_site(corpus_data_dir, tmp_path_factory.mktemp("browser")) as urls:
        yield urls


@pytest.fixture(scope="module")
def llm_site(corpus_data_dir, tmp_path_factory, scripted_llm_server):
    """The app answering with the generative engine over the tests' scripted OpenAI-compatible server."""
    with _serve_site(corpus_data_dir, tmp_path_factory.mktemp("browser-llm"), ASSISTANT_ANSWER__ENGINE="openai",
                     ASSISTANT_LLM__BASE_URL=scripted_llm_server.base_url, ASSISTANT_LLM__TIMEOUT="10",
                     ASSISTANT_LLM__MAX_RETRIES="0") as urls:
        yield urls


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def _watch_widget_events(page) -> None:
    page.evaluate("""() => { window.__events = [];
        document.addEventListener('newsroom-assistant', e => window.__events.push(e.detail.event)); }""")


def _ask_on_wiki(page, url: str, question: str) -> None:
    """Open the wiki page, record the widget's events (window.__events) and ask `question`."""
    page.goto(url)
    _watch_widget_events(page)
    _ask_widget(page, question)


def _ask_widget(page, question: str) -> None:
    page.get_by_role("button", name="Ask the newsroom").click()
    box = page.get_by_label("Your question")
    sync_api.expect(box).to_be_focused()
    box.fill(question)
    box.press("Enter")


def test_widget_streams_an_answer_and_expands_a_citation(site, page):
    _ask_on_wiki(page, site["wiki"], QUESTION)
    first = page.locator("#nra-panel details[data-n~='1']")
    sync_api.expect(first).to_be_visible(timeout=60_000)
    events = page.evaluate("window.__events")
    assert events[0] == "delta" and events[-2:] == ["citations", "done"] and "error" not in events
    answer = page.locator("#nra-panel .a").first
    assert "[1]" in answer.inner_text() and "Iran" in answer.inner_text()
    # Citations are collapsed until asked for; the [1] in the answer opens its source.
    assert first.get_attribute("open") is None
    page.locator("#nra-panel .ref").first.click()
    sync_api.expect(first).to_have_attribute("open", "")
    assert "Russia snubs Iran as Kremlin refuses military help" in first.locator("summary").inner_text()
    assert "Newsroom Wire · 2025-06-24" in first.locator(".meta").inner_text()
    quotes = first.locator("mark").all_inner_texts()
    assert quotes and all(q and q in answer.inner_text() for q in quotes)
    # Quotes from one passage share its source: as many highlights as numbers in its summary.
    numbers = first.get_attribute("data-n").split()
    assert len(quotes) == len(numbers) and all(f"[{n}]" in first.locator("summary").inner_text() for n in numbers)
    sources = page.locator("#nra-panel details")
    cited = {b.strip("[]") for b in page.locator("#nra-panel .ref").all_inner_texts()}
    assert sources.count() < len(cited)  # the seed answer quotes one passage twice
    first.evaluate("d => { d.open = false; }")
    page.locator("#nra-panel .ref", has_text=f"[{numbers[-1]}]").click()  # every number opens the shared source
    sync_api.expect(first).to_have_attribute("open", "")
    sync_api.expect(first.locator(f"mark[data-n='{numbers[-1]}']")).to_be_in_viewport()  # at its own quote
    link = first.get_by_role("link", name="Read the article")
    assert link.get_attribute("href").startswith("https://newsroom.example/")
    # The wiki's `button {display:none}` and colour rules do not reach inside the Shadow DOM.
    color = page.locator("#nra-panel .send").evaluate("b => getComputedStyle(b).color")
    assert color == "rgb(255, 255, 255)"
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "widget.png"))
    # Keyboard: summary toggles with Enter; Esc closes the panel and gives focus back to the button.
    first.locator("summary").focus()
    page.keyboard.press("Enter")
    sync_api.expect(first).not_to_have_attribute("open", "")
    page.keyboard.press("Escape")
    sync_api.expect(page.locator("#nra-panel")).to_be_hidden()
    launcher = page.get_by_role("button", name="Ask the newsroom")
    sync_api.expect(launcher).to_be_focused()
    assert launcher.get_attribute("aria-expanded") == "false"
    assert page.dialogs == []


def test_widget_marks_claims_their_sources_do_not_support(llm_site, page, scripted_llm_server, corpus_assistant):
    """Generative engine: the citation check's verdict reaches the widget (warning, score, flagged source)."""
    from tests.test_generative import passage_number

    llm = scripted_llm_server
    llm.reset()
    n = passage_number(corpus_assistant, QUESTION, "will not intervene militarily")
    china = passage_number(corpus_assistant, QUESTION, "China urged an immediate ceasefire")
    llm.enqueue(f"Moscow will not intervene militarily on Iran's behalf [{n}]. "
                f"Russia sent 300 tanks and Wagner troops to Isfahan [{china}].")
    _ask_on_wiki(page, llm_site["wiki"], QUESTION)
    warn = page.locator("#nra-panel .warn")
    sync_api.expect(warn).to_be_visible(timeout=60_000)
    assert "Russia sent 300 tanks and Wagner troops to Isfahan" in warn.inner_text()
    assert re.search(r"support 0\.\d\d", warn.inner_text()), warn.inner_text()
    good, bad = page.locator("#nra-panel details[data-n~='1']"), page.locator("#nra-panel details[data-n~='2']")
    assert good.get_attribute("class") is None and "does not support" not in good.inner_text()
    assert bad.get_attribute("class") == "unsupported"
    bad.locator("summary").click()
    assert "does not support the sentence citing it" in bad.locator(".meta").inner_text()
    assert "China calls for ceasefire" in bad.locator("summary").inner_text()
    events = page.evaluate("window.__events")
    assert events.count("delta") >= 2 and events[-2:] == ["citations", "done"]  # streamed, then the verdict
    assert llm.history and llm.history[-1]["stream"] is True
    assert page.dialogs == []


def test_widget_says_when_the_model_server_fails_and_shows_the_offline_answer(llm_site, page,
                                                                             scripted_llm_server):
    from scripted_llm import Fault

    scripted_llm_server.reset()
    scripted_llm_server.enqueue(Fault(status=500))
    _ask_on_wiki(page, llm_site["wiki"], QUESTION)
    first = page.locator("#nra-panel details[data-n~='1']")
    sync_api.expect(first).to_be_attached(timeout=60_000)
    events = page.evaluate("window.__events")
    assert events[0] == "notice" and "error" not in events
    text = page.locator("#nra-panel .turn").first.inner_text()
    assert "extractive answer" in text  # the notice stays under the answer
    assert "diplomatic condemnation" in page.locator("#nra-panel .a").first.inner_text()


def test_widget_on_a_disallowed_origin_shows_a_clear_message(site, page):
    page.goto(site["other"])
    _ask_widget(page, QUESTION)
    alert = page.locator("#nra-panel [role=alert]")
    sync_api.expect(alert).to_be_visible(timeout=30_000)
    assert "is not allowed to use the assistant" in alert.inner_text()
    assert page.locator("#nra-panel .a").first.inner_text() == ""
    assert page.locator("#nra-panel details").count() == 0


def test_widget_with_a_wrong_token_says_so(site, page):
    page.goto(site["wrong_token"])
    _ask_widget(page, QUESTION)
    alert = page.locator("#nra-panel [role=alert]")
    sync_api.expect(alert).to_be_visible(timeout=30_000)
    assert "token is not valid" in alert.inner_text()
    assert page.locator("#nra-panel details").count() == 0


def test_xss_title_renders_as_text(site, page):
    r = httpx.post(site["app"] + "/api/articles", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60, json={
        "title": XSS, "url": "javascript:alert(2)",
        "body": "The Zanzibar clove harvest failed this year after unusually heavy rains, officials said."})
    assert r.status_code == 200, r.text
    page.goto(site["wiki"])
    _ask_widget(page, "What happened to the Zanzibar clove harvest?")
    first = page.locator("#nra-panel details[data-n~='1']")
    sync_api.expect(first).to_be_visible(timeout=60_000)
    first.locator("summary").click()
    assert first.locator("summary").inner_text() == f"[1] {XSS}"
    assert page.evaluate("document.getElementById('newsroom-assistant-widget').shadowRoot"
                         ".querySelectorAll('img').length") == 0
    assert first.get_by_role("link").count() == 0  # a javascript: URL is never made a link
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_widget_fits_a_narrow_screen(site, browser):
    context = browser.new_context(viewport={"width": 360, "height": 640}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(site["wiki"])
        page.get_by_role("button", name="Ask the newsroom").click()
        box = page.locator("#nra-panel").bounding_box()
        assert box["x"] == 0 and box["width"] == 360
        assert page.get_by_role("button", name="Close").is_visible()
    finally:
        context.close()


def test_gradio_chat_answers_with_a_source_card(site, page):
    page.goto(site["app"] + "/")
    box = page.locator("#question textarea")
    sync_api.expect(box).to_be_visible(timeout=60_000)
    box.fill(QUESTION)
    box.press("Enter")
    card = page.locator("#sources .source-card").first
    sync_api.expect(card).to_be_visible(timeout=60_000)
    assert "Russia snubs Iran as Kremlin refuses military help" in card.inner_text()
    assert card.locator("mark").first.inner_text().strip()
    sync_api.expect(page.locator("#chat")).to_contain_text("[1]")
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "chat.png"), full_page=True)
    assert page.dialogs == []


def test_server_log_has_requests_but_no_tokens(site):
    text = site["log"].read_text()
    assert "POST /api/ask/stream" in text  # the access log is on (-v)...
    assert WIDGET not in text and ADMIN not in text and "not-a-token" not in text  # ...and tokens stay out
