"""The Gradio chat: streamed answers, a sources panel with each quoted passage highlighted."""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterator

import gradio as gr

from assistant.answering.chain import Assistant, check_question
from assistant.errors import AssistantError
from assistant.models import Answer, Citation, Passage
from assistant.text.sentences import split_sentences
from assistant.text.words import token_set
from assistant.urls import is_http_url
from assistant.web.actor import actor_of
from assistant.web.signin import USER_HEADER

log = logging.getLogger(__name__)

EXAMPLES = [
    "Did Russia offer Iran military help?",
    "What did the Kremlin say about BRICS?",
    "Who is Dmitry Peskov?",
]

# System fonts: the default theme would fetch its fonts from a CDN (blocked offline and by our CSP).
THEME = gr.themes.Default(font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])

CSS = """
.source-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;
  margin-bottom: 10px; }
.source-card .meta { color: var(--body-text-color-subdued); font-size: 0.85em; }
.source-card mark { background: #fde68a; color: inherit; padding: 0 2px; }
.source-card .speaker { color: #374151; font-style: italic; }
.source-card .passage { white-space: pre-wrap; font-size: 0.9em; margin-top: 6px; unicode-bidi: plaintext; }
.source-card .title { font-weight: 600; unicode-bidi: plaintext; }
.sources-empty { color: var(--body-text-color-subdued); }
#chat .message-content { unicode-bidi: plaintext; text-align: start; }
.source-card.unsupported { border-color: #f59e0b; }
.unsupported-note { border-left: 3px solid #f59e0b; padding: 4px 10px; margin-bottom: 10px; font-size: 0.9em; }
#chat .message-content, #chat .message { white-space: pre-wrap; }
#chat a.ref { text-decoration: none; background: #e0e7ff; color: #1e3a8a; border-radius: 4px; padding: 0 3px; }
.source-card mark { scroll-margin-top: 40vh; }
.source-card mark:target { outline: 3px solid #1d4ed8; outline-offset: 1px; }
.nearest-note { font-weight: 600; margin: 0 0 8px; }
.source-card .near { color: var(--body-text-color-subdued); font-size: 0.85em; }
#sources { scroll-margin-top: 8px; }
@media (max-width: 640px) {
  #chat { height: auto !important; max-height: none !important; min-height: 200px; }
  #chat .bubble-wrap, #chat > div { height: auto !important; max-height: none !important; overflow: visible; }
}
"""

# Gradio sends an unexpected exception as its own text; ours is the {error, hint} of the API, as plain text.
INTERNAL_ERROR = "internal error (the server log has the details)"
_REF = re.compile(r"\[(\d+)\]")
_AFTER_REFS = re.compile(r"((?:\s*\[\d+\])+)[ \t]+(?=[^\s\[])")


def _meta(source: str | None, published_at: str | None) -> str:
    return " · ".join(html.escape(str(x)) for x in (source, published_at) if x)


def chat_html(text: str, numbers: set[int] | None = None) -> str:
    """Answer text for the chat, escaped (it holds article quotes), one cited sentence per line (a dateline such as
    "MOSCOW —" opens its own line), and each [n] of a citation a link to its quote in the sources panel."""
    out = html.escape(text, quote=False)
    out = _AFTER_REFS.sub(lambda m: m.group(1) + "\n", out)
    if numbers:
        out = _REF.sub(lambda m: f'<a class="ref" href="#quote-{m.group(1)}">[{m.group(1)}]</a>'
                       if int(m.group(1)) in numbers else m.group(0), out)
    return out


def _http_url(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) link, else None (javascript:, data:, relative paths: no link)."""
    return url.strip() if is_http_url(url) else None


def _title(title: str | None, url: str | None) -> str:
    t = html.escape(str(title or "").strip() or "(untitled)")
    href = _http_url(url)
    if href:
        return f'<a href="{html.escape(href, quote=True)}" target="_blank" rel="noopener noreferrer">{t}</a>'
    return t


def _meta_div(*parts: str) -> str:
    text = " · ".join(p for p in parts if p)
    return f'<div class="meta" dir="auto">{text}</div>' if text else ""


def _speaker(name: str | None) -> str:
    """ — Speaker, after a quote whose speaker is known (escaped: it is article text)."""
    return f' <span class="speaker">— {html.escape(name)}</span>' if name else ""


def _marked(text: str, spans: list[tuple[int, int, list[int]]], speakers: dict[int, str | None] | None = None) -> str:
    """`text` escaped, with each (start, end, numbers) span in a <mark id="quote-n"> (spans relative to text)
    followed by its speaker when `speakers` knows one; a quote inside one already marked gets an anchor of its
    own at the same place."""
    body, at = "", 0
    anchors = ""
    for a, b, ns in sorted(spans):
        a = max(a, at)
        if b <= a:
            continue
        first, *rest = ns
        anchors = "".join(f'<span id="quote-{n}"></span>' for n in rest)
        who = next((speakers[n] for n in ns if (speakers or {}).get(n)), None) if speakers else None
        body += (html.escape(text[at:a]) + anchors + f'<mark id="quote-{first}" data-n="{first}">'
                 + html.escape(text[a:b]) + "</mark>" + _speaker(who))
        at = b
    return body + html.escape(text[at:])


def citation_card(cites: list[Citation], passage: Passage | None) -> str:
    """One source card for the citations quoting one passage: their numbers, the title (linked), outlet and
    date, and the passage with every quote highlighted (a quote alone when the passage is unknown).
    Every article field is escaped: it is untrusted text."""
    c = cites[0]
    if passage is not None:
        spans: list[tuple[int, int, list[int]]] = []
        for x in sorted(cites, key=lambda x: (x.start, -x.end)):
            a, b = x.start - passage.start, x.end - passage.start
            inside = next((s for s in spans if s[0] <= a and b <= s[1]), None)
            if inside is not None:  # a quote inside one already marked: same highlight, its own anchor
                inside[2].append(x.n)
            else:
                spans.append((a, b, [x.n]))
        body = _marked(passage.text, spans, {x.n: x.speaker for x in cites})
    else:
        body = "".join(f'<mark id="quote-{x.n}" data-n="{x.n}">{html.escape(x.quote)}</mark>{_speaker(x.speaker)} '
                       for x in cites)
    numbers = " ".join(f"[{x.n}]" for x in cites)
    bad = [x for x in cites if x.supported is False]
    flag = " unsupported" if bad else ""
    note = (f"{' '.join(f'[{x.n}]' for x in bad)} does not support the sentence citing it" if bad else "")
    # dir="auto": each title and passage takes its direction from its own text (Arabic, Persian are RTL)
    return (f'<div class="source-card{flag}" data-n="{" ".join(str(x.n) for x in cites)}">'
            f'<div class="title" dir="auto">{numbers} {_title(c.title, c.url)}</div>'
            f'{_meta_div(_meta(c.source, c.published_at), note)}'
            f'<div class="passage" dir="auto">{body}</div></div>')


def support_html(answer: Answer) -> str:
    """The citation check's verdict: sentences the cited passages do not back, and the support score."""
    if not answer.unsupported:
        return ""
    items = "".join(f"<li>{html.escape(s)}</li>" for s in answer.unsupported)
    score = f" (support {answer.support:.2f})" if answer.support is not None else ""
    return (f'<div class="unsupported-note">⚠️ Not supported by the passages they cite{score}:'
            f"<ul>{items}</ul></div>")


def best_sentence(passage: Passage, question: str) -> tuple[int, int] | None:
    """The passage's sentence sharing the most words with the question (relative offsets), None when none does."""
    words = token_set(question or "")
    spans = [(s - passage.start, e - passage.start) for s, e in passage.sentence_spans()]
    spans = spans or split_sentences(passage.text)
    best, best_score = None, 0
    for a, b in spans:
        score = len(words & token_set(passage.text[a:b]))
        if score > best_score:
            best, best_score = (a, b), score
    return best


def nearest_card(passage: Passage, question: str) -> str:
    """A refusal's card for one nearest article: title, outlet and date when known, and its passage with the
    sentence closest to the question highlighted."""
    span = best_sentence(passage, question)
    text = passage.text
    if span:
        a, b = span
        body = (html.escape(text[:a]) + "<mark>" + html.escape(text[a:b]) + "</mark>" + html.escape(text[b:]))
    else:
        body = html.escape(text)
    return (f'<div class="source-card nearest"><div class="title" dir="auto">{_title(passage.title, passage.url)}'
            f'</div>{_meta_div(_meta(passage.source, passage.published_at))}'
            f'<div class="passage" dir="auto">{body}</div></div>')


def sources_html(answer: Answer, question: str = "") -> str:
    """The sources panel for an answer (each nearest article once when the assistant refused)."""
    if answer.citations:
        by_article: dict[str, list[Passage]] = {}
        for p in answer.passages:
            by_article.setdefault(p.article_id, []).append(p)
        # Quotes from one passage share a card, so the panel shows each passage once.
        groups: dict[tuple, tuple[Passage | None, list[Citation]]] = {}
        for c in answer.citations:
            passage = next((p for p in by_article.get(c.article_id, []) if p.start <= c.start and c.end <= p.end),
                           None)
            key = (c.article_id, passage.start, passage.end) if passage is not None else ("quote", c.n)
            groups.setdefault(key, (passage, []))[1].append(c)
        cards = [citation_card(cites, passage) for passage, cites in groups.values()]
        return support_html(answer) + "".join(cards)
    if answer.passages:
        nearest: dict[str, Passage] = {}
        for p in answer.passages:  # each article once: its best-ranked passage
            best = nearest.get(p.article_id)
            if best is None or p.score > best.score:
                nearest[p.article_id] = p
        cards = [nearest_card(p, question) for p in list(nearest.values())[:3]]
        return ('<p class="nearest-note">No article answers this question. The nearest '
                f'{"article" if len(cards) == 1 else "articles"}, with the closest sentence highlighted:</p>'
                + "".join(cards))
    return '<p class="sources-empty">No sources.</p>'


def build_app(assistant: Assistant) -> gr.Blocks:
    """The chat UI; also exposes `/ask` (question -> answer text, citations JSON) for gradio_client.

    The chat shows text as HTML: everything from the user, the articles and the answer is escaped first, and
    the only markup added is our own (the [n] links to the sources panel).
    """
    searching = '<p class="sources-empty">Searching the articles…</p>'

    def respond(message: str, history: list[dict], request: gr.Request) -> Iterator[tuple[list[dict], str, str]]:
        turns = _pairs(history)
        history = list(history) + [{"role": "user", "content": html.escape(message or "", quote=False)},
                                   {"role": "assistant", "content": ""}]
        yield history, searching, ""
        text = ""
        try:
            assistant.archive.audit.question(actor_of(request), "chat", check_question(message))
            for ev in assistant.stream(message, turns):
                if ev.kind == "delta":
                    text += ev.text
                    history[-1]["content"] = chat_html(text)
                    yield history, searching, ""
                elif ev.kind == "notice":  # e.g. the model server is down: the extractive answer follows
                    text = ""
                    history[-1]["content"] = chat_html(f"⚠️ {ev.text}")
                    yield history, searching, ""
                elif ev.answer is not None:
                    shown = ev.answer.notice and ev.answer.notice != "empty store"
                    notice = f"\n\n⚠️ {ev.answer.notice}" if shown else ""
                    numbers = {c.n for c in ev.answer.citations}
                    history[-1]["content"] = chat_html(ev.answer.answer, numbers) + chat_html(notice)
                    yield history, sources_html(ev.answer, message), ""
        except AssistantError as e:
            history[-1]["content"] = chat_html(f"⚠️ {e}")
            yield history, '<p class="sources-empty">No sources.</p>', ""
        except Exception:
            log.exception("the chat failed to answer")
            history[-1]["content"] = chat_html(f"⚠️ {INTERNAL_ERROR}")
            yield history, '<p class="sources-empty">No sources.</p>', ""

    def ask(question: str, request: gr.Request) -> tuple[str, str]:
        """Ask one question; returns the answer text and its citations as JSON."""
        try:
            assistant.archive.audit.question(actor_of(request), "chat", check_question(question))
            answer = assistant.ask(question)
        except AssistantError as e:
            return f"⚠️ {e}", "[]"
        except Exception:
            log.exception("/ask failed")
            return f"⚠️ {INTERNAL_ERROR}", "[]"
        return answer.answer, json.dumps(answer.to_json()["citations"], ensure_ascii=False)

    def signed_in(request: gr.Request) -> str:
        """Who the newsroom's sign-in says is asking (the header security.SignedIn passes on, never a forged one)."""
        name = (request.headers or {}).get(USER_HEADER) if request is not None else None
        return f'<p class="signed-in">Signed in as <strong>{html.escape(name)}</strong></p>' if name else ""

    with gr.Blocks(title="Newsroom assistant", analytics_enabled=False) as demo:
        who = gr.HTML("", elem_id="signed-in")
        gr.Markdown("## Ask the newsroom archive\nEvery answer quotes the articles it comes from. Click a number "
                    "such as [1] in an answer to jump to its quote, highlighted under Sources.")
        with gr.Row():
            with gr.Column(scale=3, min_width=300):
                chatbot = gr.Chatbot(height=460, show_label=False, label="Answers", elem_id="chat",
                                     sanitize_html=True, render_markdown=False, rtl=False, buttons=["copy"],
                                     feedback_options=None, allow_file_downloads=False, allow_tags=False)
                box = gr.Textbox(placeholder="Ask a question about the news…", show_label=False,
                                 elem_id="question", submit_btn=True)
            with gr.Column(scale=2, min_width=300):
                gr.Markdown("### Sources")
                sources = gr.HTML(_empty_notice(assistant), elem_id="sources")
        gr.Examples(EXAMPLES, inputs=box, label="Try")
        box.submit(respond, [box, chatbot], [chatbot, sources, box], api_name="chat")
        gr.api(ask, api_name="ask")
        demo.load(signed_in, None, who, api_name=False, show_progress="hidden")
    return demo


def _pairs(history: list[dict]) -> list[tuple[str, str]]:
    """The conversation as (question, answer) text pairs: the chat's HTML (our escaping and [n] links) undone."""
    turns, pending = [], None
    for m in history or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content)
        content = html.unescape(re.sub(r"<[^>]*>", "", str(content or "")))
        if m.get("role") == "user":
            pending = content
        elif m.get("role") == "assistant" and pending is not None:
            turns.append((pending, content))
            pending = None
    return turns


def _empty_notice(assistant: Assistant) -> str:
    try:
        empty = assistant.store.is_empty()
    except AssistantError as e:
        return f'<p class="sources-empty">⚠️ {html.escape(str(e))}</p>'
    if empty:
        return ('<p class="sources-empty">⚠️ The archive is empty. Ingest articles with '
                '<code>assistant ingest PATH</code>, then reload.</p>')
    return '<p class="sources-empty">Sources of the answer appear here.</p>'
