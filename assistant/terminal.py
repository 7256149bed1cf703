"""What the command line prints besides its commands' own lines: the one error line, progress bars, the
ingest report, `stats`' keyword-index and sources lines and the audit trail. Only cli.py calls these."""

from __future__ import annotations

import json
import re
import sys

import click

# Control characters (escapes, newlines, NUL) and the bidi embeddings, overrides and isolates, which reorder
# what a terminal shows; format characters such as the zero-width non-joiner are part of words and stay.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+")
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # json.dumps escapes the others


def printable(text: str) -> str:
    """`text` for a terminal line: every run of control or bidi-override characters made one space."""
    return _UNPRINTABLE.sub(" ", text)


def json_escaped(text: str) -> str:
    """JSON text with the characters `json.dumps(ensure_ascii=False)` leaves raw and a terminal acts on (DEL, C1
    controls, bidi overrides) written as \\u escapes: the same JSON value, safe to print."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def error(message: str, hint: str | None = None) -> None:
    """The CLI's one error line on stderr: message and fix together, so scripts and logs keep both."""
    click.echo(" ".join(f"Error: {message}".split()) + (f" (hint: {' '.join(hint.split())})" if hint else ""),
               err=True)


class Bars:
    """Progress callbacks as tqdm bars on stderr: one bar per stage, the previous one closed when the next
    begins; `counting` stages count calls (files read), the others show `done` of `total`."""

    def __init__(self, labels, counting: tuple[str, ...] = ()):
        self.labels, self.counting = labels, counting
        self.bars: dict = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        counts = stage in self.counting
        if stage not in self.bars:
            self.close()
            desc, unit = self.labels(stage)
            self.bars[stage] = tqdm(desc=desc, total=None if counts else total, unit=unit, file=sys.stderr,
                                    disable=None, leave=not counts)
        bar = self.bars[stage]
        if counts:
            bar.update(1)
        else:
            bar.n = done
            bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def print_report(report, as_json: bool, extra: dict | None = None) -> None:
    """The ingest summary: one JSON object, or a line plus one line per failure and skip on stderr."""
    if as_json:
        click.echo(json.dumps({**report.to_json(), **(extra or {})}, ensure_ascii=False))
        return
    click.echo(f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
               f"failed {len(report.failed)}, skipped {len(report.skipped)} "
               f"({report.chunks} chunks written in {report.seconds:.1f}s)")
    if report.resumed:
        click.echo(f"note: {report.resumed}")
    for f in report.failed:
        click.echo(f"  failed: {f.path}{f':{f.line}' if f.line else ''}: {f.reason}", err=True)
    for f in report.skipped:
        click.echo(f"  skipped: {f.path}: {f.reason}", err=True)


def print_audit(entries, as_json: bool) -> None:
    """`assistant audit`: one JSON object, or one line per entry (time, actor, action, target, detail), its
    fields shown as text: control and bidi-override characters (an article title's escapes) become spaces."""
    if as_json:  # the exact data; what json leaves raw and a terminal would act on is \u-escaped too
        click.echo(json_escaped(json.dumps({"entries": [e.to_json() for e in entries]}, ensure_ascii=False)))
        return
    if not entries:
        click.echo("no audit entries", err=True)
    for e in entries:
        click.echo("  ".join(printable(x) for x in (e.at, e.actor, e.action, e.target or "-", e.detail) if x))


def print_quotes(records, as_json: bool) -> None:
    """`assistant quotes`: {"quotes": [...]} exactly (controls \\u-escaped in the JSON text), or per quote a line
    with date, outlet and speaker, the quote, then title and URL, every field made printable."""
    if as_json:
        click.echo(json_escaped(json.dumps({"quotes": [r.to_json() for r in records]}, ensure_ascii=False)))
        return
    if not records:
        click.echo("no quotes match")
        return
    for r in records:
        head = " · ".join(printable(x) for x in (r.published_at, r.source) if x)
        click.echo(f"{head + '  ' if head else ''}{printable(r.speaker or '(unnamed)')} ({r.kind}):")
        click.echo(f"    “{printable(r.quote)}”")
        click.echo(f"    {printable(r.title)}" + (f" {printable(r.url)}" if r.url else ""))


def keyword_index_line(archive) -> str:
    """`stats`' line on the keyword index: in step with the store, or how far behind (issue 15)."""
    st = archive.lexical.status()
    if st["in_step"]:
        return f"keyword index: in step ({st['chunks']} chunks, change {st['seq'] or 0})"
    return (f"keyword index: behind the store ({st['chunks']} of {st['store_chunks']} chunks, change "
            f"{st['seq'] if st['seq'] is not None else 'none'} of {st['store_seq'] or 0}); "
            "queries bring it in step, or run `assistant reindex`")


def print_sources(settings) -> None:
    """`stats`' lines on the watcher's sources: each with its last poll, last success and articles added."""
    from assistant.live.sources import SourceBook

    book = SourceBook(settings)
    sources, states = book.sources(), book.states()
    if sources:
        click.echo(f"sources: {len(sources)}")
    for s in sources:
        st = states.get(s.url)
        pub = st.public() if st else {}
        click.echo(f"  {s.url} ({s.kind if s.kind != 'auto' else pub.get('kind') or 'auto'}, every "
                   f"{s.interval:g} s, {s.origin}): last poll {pub.get('last_poll') or 'never'}, last success "
                   f"{pub.get('last_success') or 'never'}, {pub.get('articles_added', 0)} articles added"
                   + (f", last error: {pub['last_error']}" if pub.get("last_error") else ""))
