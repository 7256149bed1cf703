"""The command line: ingest, watch, ask, quotes, serve, stats, reindex, eval, and the administration commands of
cli_admin.py (users, audit, backup, restore) on the same group. Only this module and cli_admin.py (with
terminal.py, what they print) and web/ print or exit."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time

import click

from assistant.cli_admin import audit, backup, restore, users
from assistant.cli_common import _actor, _data_dir_option, _process_threads, _settings
from assistant.config import EngineName
from assistant.errors import AssistantError
from assistant.terminal import (
    Bars,
    error,
    keyword_index_line,
    print_quotes,
    print_report,
    print_sources,
)

LOG_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AssistantError as e:
            error(e.message, e.hint)
            sys.exit(1)


@click.group(cls=_Group)
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="ASSISTANT_DATA_DIR",
              help="Where the store lives (env ASSISTANT_DATA_DIR; default ~/.local/share/newsroom-assistant).")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="ASSISTANT_CONFIG",
              help="TOML settings file (env ASSISTANT_CONFIG).")
@click.option("-v", "--verbose", count=True, help="-v info, -vv debug logging on stderr.")
@click.version_option(package_name="newsroom-assistant")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None, config: str | None, verbose: int) -> None:
    """Newsroom assistant: cited answers from the articles you collect."""
    # The process's environment is the command line's to set (the library loads models with local_files_only).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _configure_logging(LOG_LEVELS[min(verbose, 2)])
    ctx.obj = {"data_dir": data_dir, "config": config}


def _configure_logging(level: int) -> None:
    """Our loggers at `level` on stderr, the chatty libraries at WARNING at least."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("bm25s", "httpx", "chromadb", "sentence_transformers", "urllib3", "transformers"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@_data_dir_option
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> None:
    """Read articles from files and folders (txt, md, html, json, jsonl, pdf) and http(s) URLs (an article
    page, an RSS/Atom feed or a sitemap, with their pages) into the store."""
    from assistant.ingest.ingestor import Ingestor

    urls = [p for p in paths if _URL.match(p)]
    paths = tuple(p for p in paths if not _URL.match(p))
    other = [u for u in urls if not u.lower().startswith(("http://", "https://"))]
    if other:  # ftp://, file:// ...: nothing but http(s) is fetched
        error(f"only http:// and https:// URLs can be ingested: {', '.join(other)}", "nothing was ingested")
        sys.exit(2)
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:  # a typo is the caller's error (exit 2, as for usage errors); nothing is ingested
        error(f"no such file or folder: {', '.join(missing)}", "check the path; nothing was ingested")
        sys.exit(2)
    settings = _settings(ctx)
    ingestor = Ingestor(settings)
    labels = {"read": ("Reading files", " files")}
    with Bars(lambda stage: labels.get(stage, ("Embedding articles", " articles")), counting=("read",)) as bars:
        report = ingestor.ingest_paths(paths, bars) if paths else None
    if urls:
        from assistant.live.watch import Watcher

        with Watcher(settings, ingestor=ingestor) as watcher:
            fetched = watcher.ingest_urls(urls)
        if report is None:
            report = fetched
        else:
            report.merge(fetched)
    assert report is not None  # paths or URLs: one of them was given (PATHS is required)
    ingestor.archive.audit.record(_actor(), "ingest", " ".join(paths + tuple(urls)), report.summary())
    print_report(report, as_json)


@cli.command()
@click.option("--once", is_flag=True, help="Poll every source once, print the summary and exit (for cron).")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the summary as one JSON object.")
@_data_dir_option
@click.pass_context
def watch(ctx: click.Context, once: bool, as_json: bool) -> None:
    """Poll the configured sources (feeds, sitemaps, pages) and ingest what is new or changed, until stopped."""
    from assistant.live.watch import Watcher

    settings = _settings(ctx)
    watcher = Watcher(settings)

    def stop(signum, frame) -> None:  # finish the current articles, save the state, exit 0
        if not watcher.stop.is_set():
            click.echo("stopping after the current articles", err=True)
        watcher.stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _watch(watcher, once, as_json)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _watch(watcher, once: bool, as_json: bool) -> None:
    with watcher:
        if once:
            report = watcher.round()
            print_report(report.ingest, as_json, {k: v for k, v in report.to_json().items()
                                                   if k in ("sources", "requests", "downloads", "stopped")})
            if not as_json:
                for s in report.sources:
                    click.echo(f"  {s.url}: {s.added} added, {s.updated} updated, {s.not_modified} not modified, "
                               f"{s.failed} failed" + (f", {s.pending} left for the next rounds" if s.pending
                                                       else "") + (f" ({s.error})" if s.error else ""))
            return
        sources = watcher.book.sources()
        click.echo(f"Watching {len(sources)} source{'s' * (len(sources) != 1)} (stop with Ctrl-C or SIGTERM)",
                   err=True)

        def on_round(report) -> None:  # one line per round on stderr; -v logs each source and page
            r = report.ingest
            click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S')} round: {len(report.sources)} sources polled, "
                       f"{r.added} added, {r.updated} updated, {r.unchanged} unchanged, {len(r.failed)} failed, "
                       f"{report.requests} requests", err=True)

        watcher.run(on_round)


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: answer, refused, citations.")
@click.option("--engine", help="Answer engine: extractive, openai, ollama.")
@click.option("--since", "date_from", help="Only articles published on/after YYYY-MM-DD.")
@click.option("--until", "date_to", help="Only articles published on/before YYYY-MM-DD.")
@click.option("--source", "sources", multiple=True,
              help="Only articles from outlets whose name contains this, ignoring case (repeatable).")
@click.option("--today", help="The day the question is asked (YYYY-MM-DD), for 'this week'.")
@_data_dir_option
@click.pass_context
def ask(ctx, question, as_json, engine, date_from, date_to, sources, today) -> None:
    """Answer a question from the articles, with numbered sources."""
    from assistant.answering.chain import Assistant

    settings = _settings(ctx, **{"answer.engine": engine})
    assistant = Assistant(settings)
    filters = {"date_from": date_from, "date_to": date_to, "sources": list(sources), "today": today}
    if as_json:
        click.echo(json.dumps(assistant.ask(question, filters=filters).to_json(), ensure_ascii=False))
        return
    answer, streamed, shown = None, "", []
    live = settings.answer.engine != "extractive"  # the generative engine's text is printed as it arrives
    for ev in assistant.stream(question, filters=filters):
        if ev.kind == "answer":
            answer = ev.answer
        elif ev.kind == "notice":
            if streamed:
                click.echo()
            click.echo(f"note: {ev.text}", err=True)
            shown.append(ev.text)
            streamed = ""
        elif live:
            click.echo(ev.text, nl=False)
            streamed += ev.text
    if answer is None:
        return
    if streamed.strip() and streamed.strip() != answer.answer:
        # Renumbered citations, or a reply the checks turned into a refusal: show the final form too.
        click.echo("\n\n" + answer.answer)
    elif streamed.strip():
        click.echo()
    else:
        click.echo(answer.answer)
    notice = answer.notice or ""
    for text in shown:
        notice = notice.replace(text, "")
    if notice.strip("; "):
        click.echo(f"note: {notice.strip('; ')}", err=True)
    for sentence in answer.unsupported:
        click.echo(f"unsupported by its sources: {sentence}", err=True)
    if answer.citations:
        click.echo("\nSources:")
        for c in answer.citations:
            meta = ", ".join(x for x in (c.source, c.published_at) if x)
            click.echo(f"[{c.n}] {c.title}" + (f" ({meta})" if meta else ""))
            click.echo(f"    “{c.quote}”")
            if c.url:
                click.echo(f"    {c.url}")


@cli.command()
@click.option("--speaker", help="Only this speaker's quotes, under any of their names (\"Peskov\", \"Dmitry Peskov\").")
@click.option("--about", help="Only quotes whose text or sentence holds every word of this.")
@click.option("--since", "since", help="Only articles published on/after YYYY-MM-DD.")
@click.option("--until", "until", help="Only articles published on/before YYYY-MM-DD.")
@click.option("--source", "sources", multiple=True,
              help="Only articles from outlets whose name contains this, ignoring case (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most N quotes.")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object: {"quotes": [{"speaker", "quote", "kind", "article_id", "title", '
                   '"source", "published_at", "url", "start", "end"}]}.')
@_data_dir_option
@click.pass_context
def quotes(ctx, speaker, about, since, until, sources, limit, as_json) -> None:
    """Who said what: the archive's quotes, newest first, by speaker, words, date and outlet."""
    from assistant.index.archive import Archive
    from assistant.text.timeparse import parse_day

    for flag, value in (("--since", since), ("--until", until)):
        if value is not None:
            try:
                parse_day(value)
            except AssistantError as e:  # a usage error: one line, exit 2, nothing read
                error(f"invalid {flag}: {e.message}", e.hint)
                sys.exit(2)
    archive = Archive(_settings(ctx))
    found = archive.quotes.find(speaker=speaker, about=about, since=since, until=until, source=list(sources),
                                limit=limit)
    print_quotes(found, as_json)


@cli.command()
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to bind (default 7860).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes sharing the port (more than 1 needs a Chroma server, store.host).")
@_data_dir_option
@click.pass_context
def serve(ctx, host, port, workers) -> None:
    """Serve the chat UI at / (and the REST API) on 127.0.0.1:7860."""
    from assistant.web import server

    settings = _settings(ctx, **{"server.host": host, "server.port": port})
    if workers > 1 and not settings.store.host:
        # chromadb's embedded PersistentClient keeps its vector index in each process's memory: several
        # processes writing one folder corrupt or miss each other's writes.
        error(f"--workers {workers} needs a Chroma server: the embedded store is not safe across processes",
               "run `chroma run --path DIR --port 8000` and set store.host, e.g. ASSISTANT_STORE__HOST=127.0.0.1, "
               "or serve with --workers 1")
        sys.exit(2)
    host, port = settings.server.host, settings.server.port
    if workers == 1:
        server.listen(host, port).close()  # a taken port fails here, before the models load
    if settings.embedding.threads == 0:
        # The server answers many questions at once: one embedder thread per request keeps the cores busy
        # with requests instead of synchronizing threads.
        settings = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"threads": 1})})
        if workers == 1:
            _process_threads(settings)
    shown = f"[{host}]" if ":" in host else host
    # -v shows uvicorn's access log: method, path (no query string) and status; tokens never reach a log.
    level = "info" if logging.getLogger().getEffectiveLevel() <= logging.INFO else "warning"

    def announce() -> None:
        click.echo("Sign-in required: only signed-in users, personal keys and widget tokens are answered"
                   if settings.server.login_required() else
                   "Open: no sign-in required (server.require_login is off" +
                   (", bound to loopback)" if settings.server.require_login is None else ")"), err=True)
        click.echo(f"Serving the assistant on http://{shown}:{port}/" +
                   (f" ({workers} workers)" if workers > 1 else ""), err=True)

    if workers > 1:
        from assistant.web import metrics
        from assistant.web.rate_limits import rate_limit_storage

        rate_limit_storage(settings.server)  # an unreachable Redis is one line here, before any worker starts
        # Each worker is a fresh (spawned) process that builds its own app from these settings; their metrics
        # add up through files in a folder of this run's own (the workers inherit its env var).
        folder = metrics.prepare_multiprocess(tempfile.mkdtemp(prefix="newsroom-assistant-metrics-"))
        factory = functools.partial(_worker_app, settings, logging.getLogger().getEffectiveLevel())
        try:
            server.run_workers(factory, workers, host, port, level, on_started=announce)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    from assistant.web.api import create_app

    server.run(create_app(settings), host, port, level, on_started=announce)


def _worker_app(settings, log_level: int):
    """The app of one `serve --workers N` process (runs in the worker; a module-level function, so picklable)."""
    from assistant.web import server
    from assistant.web.api import create_app

    _configure_logging(log_level)
    try:
        _process_threads(settings)
        return create_app(settings)
    except AssistantError as e:  # one line, as the CLI prints it
        error(e.message, e.hint)
    except Exception:  # a bug keeps its traceback
        logging.getLogger(__name__).exception("a serve worker could not build the app")
    server.startup_failed()  # the supervisor stops (first start) or tries again (a replacement)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_data_dir_option
@click.pass_context
def stats(ctx, as_json) -> None:
    """How many articles and chunks the store holds, and which model built it."""
    from assistant.index.archive import Archive

    settings = _settings(ctx)
    archive = Archive(settings)
    info = archive.store.stats()
    if as_json:
        click.echo(json.dumps(info))
    else:
        for k, v in info.items():
            click.echo(f"{k}: {v}")
        click.echo(keyword_index_line(archive))
        print_sources(settings)


@cli.command()
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object: {"chunks", "change", "seconds", "quotes_reread"}.')
@_data_dir_option
@click.pass_context
def reindex(ctx, as_json) -> None:
    """Read the quotes of articles an older quote extractor read again, then rebuild this data dir's keyword
    index from the store (the store is the one source of truth)."""
    from assistant.ingest.ingestor import Ingestor

    settings = _settings(ctx)
    t0 = time.perf_counter()
    ingestor = Ingestor(settings)
    with Bars(lambda stage: ("Re-reading quotes", " articles")) as bars:
        reread = ingestor.reread_quotes(bars)
    report = ingestor.lexical.sync(full=True)
    seconds = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps({"chunks": report.upserted, "change": report.seq or 0, "seconds": round(seconds, 3),
                               "quotes_reread": reread}))
        return
    click.echo(f"keyword index rebuilt from the store: {report.upserted} chunks, change {report.seq or 0} "
               f"({seconds:.1f}s); quotes read again for {reread} article{'s' * (reread != 1)}")


cli.add_command(backup)
cli.add_command(restore)
cli.add_command(users)
cli.add_command(audit)


@cli.command(name="eval")
@click.option("--dataset", "dataset", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder holding corpus.json and queries.json.")
@click.option("--engine", type=click.Choice([e.value for e in EngineName]), help="Answer engine.")
@click.option("--limit", type=int, help="Only the first N questions.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write per-query results (JSON list) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--sample", type=int, help="Smaller corpus: the evidence articles plus N others (stable pick).")
@click.option("--baseline", "baselines", multiple=True, type=click.Choice(["naive", "bm25"]),
              help="Also run a baseline (repeatable): naive (LangChain tutorial), bm25.")
@_data_dir_option
@click.pass_context
def eval_(ctx, dataset, engine, limit, out, as_json, sample, baselines) -> None:
    """Benchmark retrieval and answers on a dataset; caches its store under <data-dir>/eval/."""
    from assistant.eval.run import evaluate, format_table

    settings = _settings(ctx, **{"answer.engine": engine})

    def label(stage: str) -> tuple[str, str]:
        if stage == "embed":
            return "Ingesting corpus", " articles"
        return stage, " chunks" if stage.endswith("ingest") else " questions"

    with Bars(label) as bars:
        report = evaluate(settings, dataset, limit, tuple(dict.fromkeys(baselines)), bars, sample)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump([r.to_json() for r in report.ours.results], f, ensure_ascii=False, indent=1)
    if as_json:
        click.echo(json.dumps(report.summary(), ensure_ascii=False))
    else:
        click.echo(format_table(report))


def main() -> None:
    cli(prog_name="assistant")


if __name__ == "__main__":
    main()
