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
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.support.answers import passage_number
from tests.support.net import free_port, serve_forever_in_thread
from tests.support.paths import ROOT
from tests.support.scripted_llm import Fault
from tests.support.served import serve, server_env

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (/usr/bin/chromium); run `make test-deps`",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed; run `make test-deps`")

ADMIN = "browser-admin-7c1e52"
WIDGET = "browser-widget-94d0b3"
QUESTION = "What did Peskov say about BRICS?"  # the seed article answers it under any refusal calibration
# For the generative engine: a question about what someone said is answered from the quotes, never by the model.
MODEL_QUESTION = "Did Russia offer Iran military help?"
SEED_TITLE = "Russia snubs Iran as Kremlin refuses military help: “BRICS is not a mutual defense pact”"
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


# A wiki with a strict CSP of its own: scripts and connections only to the app, no inline styles or scripts,
# no images. The widget must work inside it (constructed stylesheet, no eval, no inline handlers).
STRICT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src {app}/widget.js; connect-src {app}; style-src 'none'; img-src 'none'">
<title>Strict wiki</title></head>
<body><h1>Desk notes</h1>
<script src="{app}/widget.js" data-token="{token}" data-title="Ask the newsroom" async></script>
</body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Pixel(http.server.BaseHTTPRequestHandler):
    """Counts every request: a tracking pixel, link or form target that article markup would hit."""

    hits: list[str] = []

    def _any(self):
        _Pixel.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST = _any

    def log_message(self, *args):
        pass


def _static_server(folder: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    port = free_port()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    serve_forever_in_thread(server)
    return server, port


@contextlib.contextmanager
def _serve_site(corpus_data_dir: Path, tmp: Path, **env_extra: str):
    """`assistant -v serve` (subprocess) over a copy of the corpus store, plus a wiki origin its widget token
    allows and one it does not; yields a dict of URLs. `env_extra` adds settings (ASSISTANT_...)."""
    pages = tmp / "pages"
    pages.mkdir()
    wiki, wiki_port = _static_server(pages)
    other, other_port = _static_server(pages)
    app_port = free_port()
    app = f"http://127.0.0.1:{app_port}"
    (pages / "wiki.html").write_text(WIKI_PAGE.format(app=app, token=WIDGET), encoding="utf-8")
    (pages / "wrong-token.html").write_text(WIKI_PAGE.format(app=app, token="not-a-token"), encoding="utf-8")
    (pages / "strict.html").write_text(STRICT_PAGE.format(app=app, token=WIDGET), encoding="utf-8")
    (pages / "probe.html").write_text("<!doctype html><title>probe</title><p>another site</p>", encoding="utf-8")
    data_dir = tmp / "data"
    shutil.copytree(corpus_data_dir, data_dir)
    env = server_env(ASSISTANT_SERVER__ADMIN_TOKEN=ADMIN,
                     ASSISTANT_SERVER__WIDGET_TOKENS=json.dumps({WIDGET: [f"http://127.0.0.1:{wiki_port}"]}),
                     ASSISTANT_SERVER__RATE_LIMIT_PER_MINUTE="100", **env_extra)
    try:
        with serve(data_dir, tmp / "server.log", env, port=app_port):
            yield {"app": app, "wiki": f"http://127.0.0.1:{wiki_port}/wiki.html",
                   "wrong_token": f"http://127.0.0.1:{wiki_port}/wrong-token.html",
                   "other": f"http://127.0.0.1:{other_port}/wiki.html",
                   "strict": f"http://127.0.0.1:{wiki_port}/strict.html",
                   "probe": f"http://127.0.0.1:{other_port}/probe.html",
                   "probe_allowed": f"http://127.0.0.1:{wiki_port}/probe.html"}
    finally:
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
    assert SEED_TITLE in first.locator("summary").inner_text()
    # The seed has no outlet, date or URL: no empty meta line, no "None", no dead link.
    assert first.locator(".meta").count() == 0 and "None" not in first.inner_text()
    assert first.get_by_role("link").count() == 0
    quotes = first.locator("mark").all_inner_texts()
    flat = " ".join(answer.inner_text().split())  # the answer joins a quote's paragraphs with a space
    assert quotes and all(q and " ".join(q.split()) in flat for q in quotes)
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
    llm = scripted_llm_server
    llm.reset()
    n = passage_number(corpus_assistant, MODEL_QUESTION, "will not intervene militarily")
    other = passage_number(corpus_assistant, MODEL_QUESTION, "Unian")  # the seed's last passage, not the first
    llm.enqueue(f"Moscow will not intervene militarily on Iran's behalf [{n}]. "
                f"The Duchy of Vellmark sent 300 tanks and 40 brigades to Durnholt [{other}].")
    _ask_on_wiki(page, llm_site["wiki"], MODEL_QUESTION)
    warn = page.locator("#nra-panel .warn")
    sync_api.expect(warn).to_be_visible(timeout=60_000)
    assert "The Duchy of Vellmark sent 300 tanks and 40 brigades to Durnholt" in warn.inner_text()
    assert re.search(r"support 0\.\d\d", warn.inner_text()), warn.inner_text()
    good, bad = page.locator("#nra-panel details[data-n~='1']"), page.locator("#nra-panel details[data-n~='2']")
    assert good.get_attribute("class") is None and "does not support" not in good.inner_text()
    assert bad.get_attribute("class") == "unsupported"
    bad.locator("summary").click()
    assert "does not support the sentence citing it" in bad.locator(".meta").inner_text()
    assert SEED_TITLE in bad.locator("summary").inner_text()
    events = page.evaluate("window.__events")
    assert events.count("delta") >= 2 and events[-2:] == ["citations", "done"]  # streamed, then the verdict
    assert llm.history and llm.history[-1]["stream"] is True
    assert page.dialogs == []


def test_widget_says_when_the_model_server_fails_and_shows_the_offline_answer(llm_site, page,
                                                                             scripted_llm_server):
    scripted_llm_server.reset()
    scripted_llm_server.enqueue(Fault(status=500))
    _ask_on_wiki(page, llm_site["wiki"], MODEL_QUESTION)
    first = page.locator("#nra-panel details[data-n~='1']")
    sync_api.expect(first).to_be_attached(timeout=60_000)
    events = page.evaluate("window.__events")
    assert events[0] == "notice" and "error" not in events
    text = page.locator("#nra-panel .turn").first.inner_text()
    assert "extractive answer" in text  # the notice stays under the answer
    assert "BRICS" in page.locator("#nra-panel .a").first.inner_text()


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


@pytest.fixture(scope="module")
def hostile(site):
    """An article with markup in title, outlet and body, every tag pointing at a counting server; removed after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Pixel)
    serve_forever_in_thread(server)
    trap = f"http://127.0.0.1:{server.server_address[1]}"
    article = {
        "title": f'<img src="{trap}/title.gif" onerror="alert(1)">Lorvik <b>clove</b> harvest fails',
        "source": f'<a href="{trap}/outlet">Avrel Gazette</a><script>alert(2)</script>',
        "url": "javascript:alert(4)",
        "body": (f'PORT AVREL — <form action="{trap}/form"><input name="q" value="1"><button>Go</button></form> '
                 f'The Lorvik clove harvest failed this year after heavy rains <img src="{trap}/body.gif" '
                 f'onerror="alert(3)">, growers in Port Avrel said on Tuesday. <script>alert(5)</script>'
                 f'<a href="{trap}/body-link">More</a> Prices of cloves doubled at the Avrel market.')}
    r = httpx.post(site["app"] + "/api/articles", headers={"Authorization": f"Bearer {ADMIN}"}, json=article,
                   timeout=60)
    assert r.status_code == 200, r.text
    _Pixel.hits.clear()
    yield {**article, "trap": trap}
    httpx.delete(site["app"] + f"/api/articles/{r.json()['ids'][0]}", headers={"Authorization": f"Bearer {ADMIN}"},
                 timeout=60)
    server.shutdown()


def _watch_requests(page, allowed: tuple[str, ...]) -> list[str]:
    """Every request the page sends to an origin outside `allowed` (the app and the wiki); blob:/data: URLs are
    local, and a request the CSP blocked never left the browser."""
    stray: list[str] = []
    local = allowed + ("blob:", "data:")

    def failed(r):
        if not r.url.startswith(local) and (r.failure or "") not in ("csp", "net::ERR_BLOCKED_BY_CSP"):
            stray.append(r.url)

    page.on("requestfinished", lambda r: None if r.url.startswith(local) else stray.append(r.url))
    page.on("requestfailed", failed)
    return stray


def _assert_inert(page, scope: str, hostile: dict) -> None:
    """Inside `scope` the article's markup is text: no element it would create, no handler run, no request."""
    counts = page.evaluate("""([scope]) => {
        const roots = [...document.querySelectorAll(scope)];
        const w = document.getElementById('newsroom-assistant-widget');
        if (scope === 'widget' && w) roots.push(w.shadowRoot.querySelector('.log'));  // not the widget's own form
        const q = s => roots.reduce((n, r) => n + r.querySelectorAll(s).length, 0);
        return {img: q('img'), form: q('form'), input: q('.passage input, blockquote input'), script: q('script'),
                b: q('b'), trapLinks: roots.reduce((n, r) => n + [...r.querySelectorAll('a')]
                    .filter(a => /127\\.0\\.0\\.1:\\d+\\/(outlet|body-link)|javascript:/.test(a.href)).length, 0)};
    }""", [scope])
    assert counts == {"img": 0, "form": 0, "input": 0, "script": 0, "b": 0, "trapLinks": 0}, (scope, counts)
    assert _Pixel.hits == [], _Pixel.hits
    assert page.dialogs == []


def test_article_markup_is_text_in_the_widget(site, page, hostile):
    """Finding 2: title, outlet and body with <img>, <a>, <form>, <script>, onerror show as text in the widget."""
    stray = _watch_requests(page, (site["app"], site["wiki"].rsplit("/", 1)[0]))
    page.goto(site["wiki"])
    _ask_widget(page, "What happened to the Lorvik clove harvest?")
    first = page.locator("#nra-panel details[data-n~='1']")
    sync_api.expect(first).to_be_visible(timeout=60_000)
    first.locator("summary").click()
    assert hostile["title"] in first.locator("summary").inner_text()
    assert hostile["source"] in first.locator(".meta").inner_text()
    assert "<img src=" in page.locator("#nra-panel .a").first.inner_text()  # the quote, exactly, as text
    assert first.get_by_role("link").count() == 0  # a javascript: URL is never made a link
    page.wait_for_function("() => document.readyState === 'complete'")
    _assert_inert(page, "widget", hostile)
    # A refusal names the nearest articles (the hostile one among them): as text too.
    _watch_widget_events(page)
    box = page.get_by_label("Your question")
    box.fill("Which team won the 1930 chess olympiad in Hamburg?")
    box.press("Enter")
    page.wait_for_function("() => window.__events.includes('done')", timeout=60_000)
    refusal = page.locator("#nra-panel .a").nth(1)
    sync_api.expect(refusal).to_have_class(re.compile("refused"))
    if "Lorvik" in refusal.inner_text():  # named among the nearest articles: with its markup as text
        assert hostile["title"] in refusal.inner_text()
    _assert_inert(page, "widget", hostile)
    assert stray == []


def test_article_markup_is_text_in_the_chat_sources_and_refusal(site, page, hostile):
    """Finding 2: the same article in the Gradio chat, its sources panel and a refusal's nearest articles."""
    stray = _watch_requests(page, (site["app"],))
    page.goto(site["app"] + "/")
    box = page.locator("#question textarea")
    sync_api.expect(box).to_be_visible(timeout=60_000)
    box.fill("What happened to the Lorvik clove harvest?")
    box.press("Enter")
    card = page.locator("#sources .source-card").first
    sync_api.expect(card).to_contain_text("Lorvik", timeout=60_000)
    assert hostile["title"] in card.inner_text() and "Avrel Gazette</a><script>" in card.inner_text()
    sync_api.expect(page.locator("#chat")).to_contain_text("<img src=")
    _assert_inert(page, "#chat, #sources", hostile)
    # A refusal names its nearest articles: their titles are text there too (chat and panel).
    box.fill("Which team won the 1930 chess olympiad in Hamburg?")
    box.press("Enter")
    sync_api.expect(page.locator("#sources .nearest-note")).to_be_visible(timeout=60_000)
    nearest = page.locator("#sources .source-card.nearest")
    titles = nearest.locator(".title").all_inner_texts()
    assert len(titles) == len(set(titles)) >= 1  # each nearest article once
    assert "None" not in page.locator("#sources").inner_text()
    _assert_inert(page, "#chat, #sources", hostile)
    assert stray == []


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
    box.fill("Did Russia offer Iran military help?")  # the seed question
    box.press("Enter")
    card = page.locator("#sources .source-card").first
    sync_api.expect(card).to_be_visible(timeout=60_000)
    assert SEED_TITLE in card.inner_text()
    assert card.locator("mark").first.inner_text().strip()
    sync_api.expect(page.locator("#chat")).to_contain_text("[1]")
    # the seed question answered in the browser from the real seed, its three points quoted verbatim
    for point in ("Moscow has made clear it will not intervene militarily on Iran’s behalf",
                  "Membership in BRICS does not imply an obligation to provide mutual assistance",
                  "beyond diplomatic condemnation, no concrete support has been offered"):
        sync_api.expect(page.locator("#chat")).to_contain_text(point)
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "chat.png"), full_page=True)
    assert page.dialogs == []


def _violations(page) -> None:
    """Record CSP violations (an init script runs before the page's own, outside its CSP)."""
    page.add_init_script("""window.__csp = [];
        document.addEventListener('securitypolicyviolation',
            e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));""")


def test_chat_works_under_its_csp_and_numbers_scroll_to_their_quotes(site, page):
    """Finding 8: the chat page's CSP blocks nothing the chat needs; [n] scrolls the sources panel to quote n,
    highlighted (:target)."""
    _violations(page)
    page.set_viewport_size({"width": 1100, "height": 500})
    response = page.goto(site["app"] + "/")
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    box = page.locator("#question textarea")
    sync_api.expect(box).to_be_visible(timeout=60_000)
    box.fill(QUESTION)
    box.press("Enter")
    refs = page.locator("#chat a.ref")
    sync_api.expect(refs.first).to_be_visible(timeout=60_000)
    # No label and no toolbar over the first message (with the conversation scrolled to its start).
    assert page.locator("#chat [data-testid='block-label']").count() == 0
    layout = page.evaluate("""() => {
        const row = document.querySelector('#chat .message-row');
        for (let e = row.parentElement; e; e = e.parentElement)
            if (e.scrollHeight > e.clientHeight && getComputedStyle(e).overflowY !== 'visible') e.scrollTop = 0;
        const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
        return {row: box(row.querySelector('.message') || row),
                bars: [...document.querySelectorAll('#chat .top-panel')].map(box)};
    }""")
    left, top, right, bottom = layout["row"]
    for bl, bt, br, bb in layout["bars"]:
        assert br <= left or bl >= right or bb <= top or bt >= bottom, (layout["row"], (bl, bt, br, bb))
    last = refs.nth(refs.count() - 1)
    n = last.inner_text().strip("[]")
    quote = page.locator(f"#sources #quote-{n}")
    last.click()
    sync_api.expect(quote).to_be_in_viewport()
    assert page.evaluate("() => location.hash") == f"#quote-{n}"
    assert quote.evaluate("m => getComputedStyle(m).outlineStyle") == "solid"  # highlighted as the target
    assert quote.inner_text() in page.locator("#chat").inner_text()  # the quote, exactly as in the answer
    assert page.evaluate("window.__csp") == []
    assert page.dialogs == []


def test_widget_works_under_a_strict_wiki_csp(site, page):
    """The widget needs no inline style, inline script or eval: it answers on a page whose CSP allows only
    the app's script and connections."""
    _violations(page)
    page.goto(site["strict"])
    _watch_widget_events(page)
    _ask_widget(page, QUESTION)
    first = page.locator("#nra-panel details[data-n~='1']")
    sync_api.expect(first).to_be_visible(timeout=60_000)
    assert page.locator("#nra-panel .send").evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"
    assert page.evaluate("window.__csp") == []


def test_chat_on_a_390px_screen(site, browser):
    """The answer is not cut (no inner scroll hides it) and the sources follow right after the question box."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(site["app"] + "/")
        box = page.locator("#question textarea")
        sync_api.expect(box).to_be_visible(timeout=60_000)
        box.fill(QUESTION)
        box.press("Enter")
        sync_api.expect(page.locator("#sources .source-card").first).to_be_visible(timeout=60_000)
        bot = page.locator("#chat .bot .message-content").last
        sync_api.expect(bot).to_contain_text("[1]")
        b = bot.bounding_box()
        assert b["x"] >= 0 and b["x"] + b["width"] <= 390
        # Nothing of the answer is hidden inside a scrolling box: every ancestor up to #chat shows it whole.
        clipped = bot.evaluate("""el => { const out = [];
            for (let e = el; e && e.id !== 'chat'; e = e.parentElement)
                if (e.scrollHeight > e.clientHeight + 2 && getComputedStyle(e).overflowY !== 'visible')
                    out.push(e.className);
            const chat = document.getElementById('chat');
            if (chat.scrollHeight > chat.clientHeight + 2 && getComputedStyle(chat).overflowY !== 'visible')
                out.push('chat');
            return out; }""")
        assert clipped == [], clipped
        question = page.locator("#question").bounding_box()
        sources = page.locator("#sources").bounding_box()
        assert 0 <= sources["y"] - (question["y"] + question["height"]) < 160  # no examples in between
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "chat-390.png"), full_page=True)
    finally:
        context.close()


FOREIGN_READS = """async ([app, question]) => {
    const out = {};
    const post = (path, body) => fetch(app + path, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                    body: JSON.stringify(body)});
    const attempts = {
        api_ask: () => post('/api/ask', {question}),
        api_stream: () => post('/api/ask/stream', {question}),
        articles: () => fetch(app + '/api/articles'),
        gradio_call: () => post('/gradio_api/call/ask', {data: [question]}),
        gradio_join: () => post('/gradio_api/queue/join', {data: [question, []], fn_index: 0, session_hash: 'x1'}),
        gradio_info: () => fetch(app + '/gradio_api/info'),
        config: () => fetch(app + '/config'),
        openapi: () => fetch(app + '/openapi.json'),
        credentials: () => fetch(app + '/api/articles', {credentials: 'include'}),
    };
    for (const [name, go] of Object.entries(attempts)) {
        try { const r = await go(); out[name] = r.status + ' ' + (await r.text()).slice(0, 300); }
        catch (e) { out[name] = 'blocked'; }
    }
    // SSE: EventSource has no way around CORS either.
    out.sse = await new Promise(resolve => {
        const es = new EventSource(app + '/gradio_api/queue/data?session_hash=x1');
        es.onmessage = e => { es.close(); resolve('read ' + e.data.slice(0, 100)); };
        es.onerror = () => { es.close(); resolve('blocked'); };
    });
    return out;
}"""


@pytest.mark.parametrize("origin", ["probe", "probe_allowed"])
def test_a_page_on_another_origin_reads_no_answer(site, page, origin):
    """Finding 1 in a browser: a page on another loopback port (an unknown origin, or the widget's allowed origin
    without a token) cannot read an answer, the article list or the app's config through any route."""
    page.goto(site[origin])
    out = page.evaluate(FOREIGN_READS, [site["app"], QUESTION])
    for name, result in out.items():
        assert "BRICS" not in result and "Peskov" not in result and "Russia" not in result, (name, result)
        if origin == "probe":
            assert result == "blocked", (name, result)  # the browser gets no CORS permission at all
        else:
            assert result == "blocked" or result.startswith(("401", "403")), (name, result)


@pytest.mark.parametrize("path, ready", [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
def test_api_docs_render_offline_under_the_csp(site, page, path, ready):
    """Finding 10: Swagger UI and ReDoc render from the app's own files, with no CSP violation and no request
    to any other host (the browser has no internet here, like an intranet)."""
    _violations(page)
    stray = _watch_requests(page, (site["app"],))
    page.goto(site["app"] + path)
    sync_api.expect(page.locator(ready).first).to_contain_text("Newsroom assistant", timeout=30_000)
    # ReDoc's bundled script points its "powered by" logo at its vendor's CDN: the CSP blocks it before any
    # request leaves (so it is a violation, but never a request); nothing else may be blocked.
    violations = [v for v in page.evaluate("window.__csp") if not v.startswith("img-src https://cdn.redoc.ly/")]
    assert violations == [] and stray == []


@pytest.fixture(scope="module")
def quoted(site):
    """A fictional article whose one sentence is mostly a named speaker's direct quote; removed after."""
    article = {"title": "Lorvik growers count the cost of the spring rains", "source": "Avrel Gazette",
               "published_at": "2025-03-04", "url": "https://avrel-gazette.example/cloves",
               "body": "PORT AVREL — Clove growers of Lorvik met on Tuesday after a month of rain.\n\n"
                       "“We have lost every clove tree on the eastern slopes of Lorvik this spring,” Ossa Vell said."}
    r = httpx.post(site["app"] + "/api/articles", headers={"Authorization": f"Bearer {ADMIN}"}, json=article,
                   timeout=60)
    assert r.status_code == 200, r.text
    yield article
    httpx.delete(site["app"] + f"/api/articles/{r.json()['ids'][0]}", headers={"Authorization": f"Bearer {ADMIN}"},
                 timeout=60)


def test_widget_and_chat_show_who_said_a_cited_quote(site, page, quoted):
    question = "What did Ossa Vell say about the clove trees on the eastern slopes?"
    r = httpx.post(site["app"] + "/api/ask", json={"question": question}, timeout=60)
    cited = [c for c in r.json()["citations"] if "clove tree" in c["quote"]]
    assert cited and cited[0]["speaker"] == "Ossa Vell"
    _ask_on_wiki(page, site["wiki"], question)
    source = page.locator("#nra-panel details", has_text="Lorvik growers").first
    sync_api.expect(source).to_be_visible(timeout=60_000)
    source.locator("summary").click()
    speaker = source.locator("blockquote .speaker").first
    sync_api.expect(speaker).to_have_text("— Ossa Vell")
    page.goto(site["app"] + "/")
    box = page.locator("#question textarea")
    sync_api.expect(box).to_be_visible(timeout=60_000)
    box.fill(question)
    box.press("Enter")
    card = page.locator("#sources .source-card", has_text="Lorvik growers").first
    sync_api.expect(card.locator(".speaker").first).to_have_text("— Ossa Vell", timeout=60_000)
