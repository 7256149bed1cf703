"""Quotes in the store of truth (issue 24 part 2): kept in chunk metadata at ingest, re-read by `reindex` after a
new extractor, carried by backup/restore, and the derived quote index (assistant/index/quotebook.py) that every
process builds from the store. Every article here is fictional (tests/data/quotes/ and the ones written below)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.index.archive import Archive
from assistant.index.store import Store, stored_quotes, visible_body
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import load_paths
from assistant.text import quotes as quotes_module
from assistant.text.quotes import EXTRACTOR_VERSION, quotes_of
from tests.support.paths import ROOT

DATA = ROOT / "tests" / "data" / "quotes"
GOLD = json.loads((DATA / "gold.json").read_text(encoding="utf-8"))
TEXTS = sorted(DATA.glob("*.txt"))


def stored(store: Store, article_id: str) -> list[tuple[int, int, str, str | None, str]]:
    """Every quote an article's chunks hold, checked to sit on the chunk holding its start."""
    [rows] = store.article_chunks([article_id]).values()
    out = []
    for cid, text, meta in rows:
        assert meta["quotes_v"] == EXTRACTOR_VERSION
        for q in stored_quotes(meta):
            assert meta["start"] <= q[0] < meta["end"], (cid, q)
            out.append(q)
    return sorted(out)


def expected_of(a) -> list[tuple[int, int, str, str | None, str]]:
    """The extractor on the title and body, offsets made the body's (the title's own quotes left out)."""
    shift = len(a.title) + 2
    return sorted((q.start - shift, q.end - shift, q.kind, q.speaker, q.cue)
                  for q in quotes_of(a.title + "\n\n" + a.body) if q.start >= shift)


@pytest.fixture
def ingested(make_settings, tmp_path):
    settings = make_settings(tmp_path / "data")
    ingestor = Ingestor(settings)
    articles = load_paths(TEXTS).articles
    report = ingestor.ingest_articles(articles)
    assert report.added == len(TEXTS) == 9
    return settings, ingestor, articles


def test_ingest_keeps_each_quote_with_its_body_offsets_on_the_chunk_of_its_start(ingested):
    settings, ingestor, articles = ingested
    for a in articles:
        got = stored(ingestor.store, a.id)
        assert got == expected_of(a) and got, a.title
        # the labelled quotes of the article, with their speakers; a headline quote is the title's, not the body's
        name = next(p.name for p in TEXTS if p.read_text(encoding="utf-8").startswith(a.title))
        gold = [(g["quote"], g["kind"], g["speaker"]) for g in GOLD[name] if g["quote"] not in a.title]
        assert [(a.body[s:e], kind, speaker) for s, e, kind, speaker, _ in got] == gold, name


def test_reingest_is_a_no_op_and_an_edit_replaces_the_quotes(ingested):
    settings, ingestor, articles = ingested
    head = ingestor.store.change_head()
    again = ingestor.ingest_articles(load_paths(TEXTS).articles)
    assert again.unchanged == 9 and again.added == again.updated == 0
    assert ingestor.store.change_head() == head
    a = next(x for x in articles if "Varga" in x.body)
    before = stored(ingestor.store, a.id)
    assert any(q[3] == "Elin Varga" for q in before)
    edited = replace(a, body=a.body.replace("Elin Varga", "Mira Castell").replace("Varga", "Castell"))
    assert edited.id == a.id
    assert ingestor.ingest_articles([edited]).updated == 1
    after = stored(ingestor.store, a.id)
    assert after == expected_of(edited)
    assert not any(q[3] and "Varga" in q[3] for q in after) and any(q[3] == "Mira Castell" for q in after)


def test_visible_body_puts_each_chunk_at_its_offsets():
    assert visible_body([(4, 9, "quick"), (0, 5, "the q"), (12, 15, "fox")]) == "the quick\n\n\nfox"


def _reindex_json(settings) -> dict:
    res = CliRunner().invoke(cli, ["reindex", "--json", "--data-dir", str(settings.data_dir)])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_reindex_after_a_new_extractor_reads_the_quotes_again_without_reembedding(ingested, monkeypatch):
    settings, ingestor, articles = ingested
    out = _reindex_json(settings)
    assert out["quotes_reread"] == 0 and set(out) == {"chunks", "change", "seconds", "quotes_reread"}
    before = {a.id: stored(ingestor.store, a.id) for a in articles}
    ids = ingestor.store.all_ids()
    vectors = ingestor.store.vectors(ids)
    head = ingestor.store.change_head()
    # a "better" extractor: version bumped, and it no longer names anybody
    real = quotes_module.quotes_of_many
    monkeypatch.setattr(quotes_module, "EXTRACTOR_VERSION", EXTRACTOR_VERSION + 1)
    monkeypatch.setattr(quotes_module, "quotes_of_many",
                        lambda texts, *a, **k: [[replace(q, speaker=None) for q in qs] for qs in real(texts, *a, **k)])
    out = _reindex_json(settings)
    assert out["quotes_reread"] == 9 and out["change"] > head
    store = Store(settings)
    for a in articles:
        [rows] = store.article_chunks([a.id]).values()
        assert {m["quotes_v"] for _, _, m in rows} == {EXTRACTOR_VERSION + 1}
        assert sorted(q for _, _, m in rows for q in stored_quotes(m)) == [
            (s, e, kind, None, cue) for s, e, kind, _, cue in before[a.id]]  # same spans, the new reading
    after = store.vectors(ids)
    assert all((after[i] == vectors[i]).all() for i in ids)  # metadata only: nothing re-embedded
    assert sorted(store.all_ids()) == sorted(ids)
    assert ingestor.lexical.status()["in_step"]
    assert _reindex_json(settings)["quotes_reread"] == 0  # read again once, not at every reindex


def test_a_restored_archive_has_the_quotes(ingested, make_settings, tmp_path):
    from assistant.ingest.backup import backup, restore

    settings, ingestor, articles = ingested
    backup(settings, tmp_path / "archive.jsonl.gz")
    target = make_settings(tmp_path / "restored")
    restore(target, tmp_path / "archive.jsonl.gz")
    restored = Store(target)
    for a in articles:
        assert stored(restored, a.id) == stored(ingestor.store, a.id) != []
    assert len(Archive(target).quotes) == sum(len(stored(ingestor.store, a.id)) for a in articles)
