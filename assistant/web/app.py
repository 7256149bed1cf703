"""The Gradio chat: streamed answers, a sources panel with each quoted passage highlighted."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator

import gradio as gr

from assistant.chain import Assistant
from assistant.errors import AssistantError
from assistant.models import Answer, Citation, Passage

log = logging.getLogger(__name__)

EXAMPLES = [
    "Did Russia offer Iran military help?",
    "What did the Kremlin say about BRICS?",
    "Who is Dmitry Peskov?",
]

CSS = """
.source-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px;
  margin-bottom: 10px; }
.source-card .meta { color: var(--body-text-color-subdued); font-size: 0.85em; }
.source-card mark { background: #fde68a; color: inherit; padding: 0 2px; }
.source-card .passage { white-space: pre-wrap; font-size: 0.9em; margin-top: 6px; unicode-bidi: plaintext; }
.source-card .title { font-weight: 600; unicode-bidi: plaintext; }
.sources-empty { color: var(--body-text-color-subdued); }
#chat .message-content { unicode-bidi: plaintext; text-align: start; }
.source-card.unsupported { border-color: #f59e0b; }
.unsupported-note { border-left: 3px solid #f59e0b; padding: 4px 10px; margin-bottom: 10px; font-size: 0.9em; }
"""


def _meta(source: str | None, published_at: str | None) -> str:
    return " · ".join(html.escape(x) for x in (source, published_at) if x)


def _title(title: str, url: str | None) -> str:
    t = html.escape(title or "(untitled)")
    if url and url.startswith(("http://", "https://")):
        return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{t}</a>'
    return t


def citation_card(cites: list[Citation], passage: Passage | None) -> str:
    """One source card for the citations quoting one passage: their numbers, the title (linked), outlet and
    date, and the passage with every quote highlighted (a quote alone when the passage is unknown)."""
    c = cites[0]
    spans = sorted((x.start - passage.start, x.end - passage.start) for x in cites) if passage is not None else []
    if spans:
        body, at = "", 0
        for a, b in spans:
            a = max(a, at)
            if b <= a:  # a quote inside one already marked
                continue
            body += html.escape(passage.text[at:a]) + "<mark>" + html.escape(passage.text[a:b]) + "</mark>"
            at = b
        body += html.escape(passage.text[at:])
    else:
        body = "<mark>" + html.escape(c.quote) + "</mark>"
    numbers = " ".join(f"[{x.n}]" for x in cites)
    bad = [x for x in cites if x.supported is False]
    flag = " unsupported" if bad else ""
    note = (f" · {' '.join(f'[{x.n}]' for x in bad)} does not support the sentence citing it" if bad else "")
    # dir="auto": each title and passage takes its direction from its own text (Arabic, Persian are RTL)
    return (f'<div class="source-card{flag}" data-n="{" ".join(str(x.n) for x in cites)}">'
            f'<div class="title" dir="auto">{numbers} {_title(c.title, c.url)}</div>'
            f'<div class="meta" dir="auto">{_meta(c.source, c.published_at)}{note}</div>'
            f'<div class="passage" dir="auto">{body}</div></div>')


def support_html(answer: Answer) -> str:
    """The citation check's verdict: sentences the cited passages do not back, and the support score."""
    if not answer.unsupported:
        return ""
    items = "".join(f"<li>{html.escape(s)}</li>" for s in answer.unsupported)
    score = f" (support {answer.support:.2f})" if answer.support is not None else ""
    return (f'<div class="unsupported-note">⚠️ Not supported by the passages they cite{score}:'
            f"<ul>{items}</ul></div>")


def sources_html(answer: Answer) -> str:
    """The sources panel for an answer (nearest passages when the assistant refused)."""
    if answer.citations:
        by_article = {}
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
        cards = [f'<div class="source-card"><div class="title" dir="auto">{_title(p.title, p.url)}</div>'
                 f'<div class="meta" dir="auto">nearest passage · {_meta(p.source, p.published_at)}</div>'
                 f'<div class="passage" dir="auto">{html.escape(p.text)}</div></div>' for p in answer.passages[:3]]
        return '<p class="sources-empty">No source answers this question. Nearest passages:</p>' + "".join(cards)
    return '<p class="sources-empty">No sources.</p>'


def build_app(assistant: Assistant) -> gr.Blocks:
    """The chat UI; also exposes `/ask` (question -> answer text, citations JSON) for gradio_client."""

    def respond(message: str, history: list[dict]) -> Iterator[tuple[list[dict], str, str]]:
        turns = _pairs(history)
        history = list(history) + [{"role": "user", "content": message},
                                   {"role": "assistant", "content": ""}]
        yield history, '<p class="sources-empty">Searching the articles…</p>', ""
        text = ""
        try:
            for ev in assistant.stream(message, turns):
                if ev.kind == "delta":
                    text += ev.text
                    history[-1]["content"] = text
                    yield history, '<p class="sources-empty">Searching the articles…</p>', ""
                elif ev.kind == "notice":  # e.g. the model server is down: the extractive answer follows
                    text = ""
                    history[-1]["content"] = f"⚠️ {ev.text}"
                    yield history, '<p class="sources-empty">Searching the articles…</p>', ""
                elif ev.answer is not None:
                    shown = ev.answer.notice and ev.answer.notice != "empty store"
                    notice = f"\n\n⚠️ {ev.answer.notice}" if shown else ""
                    history[-1]["content"] = ev.answer.answer + notice
                    yield history, sources_html(ev.answer), ""
        except AssistantError as e:
            history[-1]["content"] = f"⚠️ {e}"
            yield history, '<p class="sources-empty">No sources.</p>', ""

    def ask(question: str) -> tuple[str, str]:
        """Ask one question; returns the answer text and its citations as JSON."""
        try:
            answer = assistant.ask(question)
        except AssistantError as e:
            return f"⚠️ {e}", "[]"
        return answer.answer, json.dumps(answer.to_json()["citations"], ensure_ascii=False)

    with gr.Blocks(title="Newsroom assistant") as demo:
        gr.Markdown("## Ask the newsroom archive\nEvery answer quotes the articles it comes from; "
                    "click a source to read the passage.")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(height=460, label="Answers", elem_id="chat", sanitize_html=True,
                                     render_markdown=False, rtl=False)
                box = gr.Textbox(placeholder="Ask a question about the news…", show_label=False,
                                 elem_id="question", submit_btn=True)
                gr.Examples(EXAMPLES, inputs=box, label="Try")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(_empty_notice(assistant), elem_id="sources")
        box.submit(respond, [box, chatbot], [chatbot, sources, box], api_name="chat")
        gr.api(ask, api_name="ask")
    return demo


def _pairs(history: list[dict]) -> list[tuple[str, str]]:
    turns, pending = [], None
    for m in history or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content)
        if m.get("role") == "user":
            pending = str(content or "")
        elif m.get("role") == "assistant" and pending is not None:
            turns.append((pending, str(content or "")))
            pending = None
    return turns


def _empty_notice(assistant: Assistant) -> str:
    try:
        empty = assistant.store.count() == 0
    except AssistantError as e:
        return f'<p class="sources-empty">⚠️ {html.escape(str(e))}</p>'
    if empty:
        return ('<p class="sources-empty">⚠️ The archive is empty. Ingest articles with '
                '<code>assistant ingest PATH</code>, then reload.</p>')
    return '<p class="sources-empty">Sources of the answer appear here.</p>'
