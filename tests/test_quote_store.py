"""Quotes in the store of truth (issue 24 part 2): kept in chunk metadata at ingest, re-read by `reindex` after a
new extractor, carried by backup/restore, and the derived quote index (assistant/index/quotebook.py) that every
process builds from the store. Every article here is fictional (tests/data/quotes/ and the ones written below)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.errors import AssistantError
from assistant.index.archive import Archive
from assistant.index.quotebook import speaker_matches
from assistant.index.store import Store, stored_quotes, visible_body
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import load_paths
from assistant.text import quotes as quotes_module
from assistant.text.quotes import EXTRACTOR_VERSION, quotes_of
from assistant.text.words import tokenize
from tests.support.quotes import GOLD, TEXTS, dated_articles, gold_of


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


def test_ingest_of_an_unchanged_article_read_by_an_older_extractor_reads_its_quotes_again(ingested, monkeypatch):
    """An archive made before an extractor upgrade (`make run` ingests corpus/ again at each start): the unchanged
    articles are not re-embedded, but their quotes are the current extractor's, and the quote book sees them."""
    settings, ingestor, articles = ingested
    vectors = ingestor.store.vectors(ingestor.store.all_ids())
    monkeypatch.setattr(quotes_module, "EXTRACTOR_VERSION", EXTRACTOR_VERSION + 1)
    again = Ingestor(settings)  # another run of `assistant ingest`, with its own quote book
    report = again.ingest_articles(load_paths(TEXTS).articles)
    assert report.unchanged == 9 and report.added == report.updated == 0
    for a in articles:
        [rows] = again.store.article_chunks([a.id]).values()
        assert {m["quotes_v"] for _, _, m in rows} == {EXTRACTOR_VERSION + 1}
        assert sorted(q for _, _, m in rows for q in stored_quotes(m)) == expected_of(a)
    after = again.store.vectors(list(vectors))
    assert all((after[i] == vectors[i]).all() for i in vectors)  # metadata only
    assert again.archive.quotes.find(speaker="Hanna Ostrow")  # in the new process's book too
    assert _reindex_json(settings)["quotes_reread"] == 0  # nothing left for reindex


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


@pytest.fixture
def book(make_settings, tmp_path):
    settings = make_settings(tmp_path / "dated")
    ingestor = Ingestor(settings)
    articles = dated_articles()
    ingestor.ingest_articles(articles)
    return ingestor.archive.quotes, articles


def test_find_newest_first_with_verbatim_quotes(book):
    quotes, articles = book
    found = quotes.find(limit=1000)
    by_id = {a.id: a for a in articles}
    assert len(found) == sum(len(gold_of(a)) for a in articles)
    assert [r.published_at for r in found] == sorted((r.published_at for r in found), reverse=True)
    for r in found:
        a = by_id[r.article_id]
        assert r.quote == a.body[r.start:r.end] and r.title == a.title and r.source == a.source and r.url == a.url
    assert len(quotes.find(limit=3)) == 3
    first = found[0].article_id
    assert [r.start for r in quotes.of_article(first)] == sorted(r.start for r in found if r.article_id == first)


def test_find_by_speaker_takes_any_of_their_names_and_joint_speakers(book):
    quotes, articles = book
    full = next(g["speaker"] for a in articles for g in gold_of(a) if g["speaker"] and " and " in g["speaker"])
    one = full.split(" and ")[0]  # a person who also speaks jointly with another
    last = one.split()[-1]
    expected = sorted(g["quote"] for a in articles for g in gold_of(a)
                      if g["speaker"] and one in g["speaker"].split(" and "))
    for name in (last, one, one.upper(), f"Harbour chair {one}"):
        got = quotes.find(speaker=name, limit=1000)
        assert sorted(r.quote for r in got) == expected, name
    assert {r.speaker for r in quotes.find(speaker=last, limit=1000)} >= {one, full}
    assert quotes.find(speaker=one.split()[0]) == []  # a first name alone is nobody
    assert quotes.find(speaker="Nobody Atall") == []
    unnamed = [r for r in quotes.find(limit=1000) if r.speaker is None]
    assert unnamed and not any(r.speaker is None for r in quotes.find(speaker="officials", limit=1000))


def test_speaker_matching_rules():
    assert speaker_matches("Dmitry Peskov", "peskov") and speaker_matches("Peskov", "Kremlin spokesman Dmitry Peskov")
    assert speaker_matches("Anna Vell and Ruben Sallow", "Sallow")
    assert not speaker_matches("Bank of Northvale", "Northvale") and not speaker_matches(None, "Peskov")
    assert not speaker_matches("Dmitry Peskov", "Dmitry")
    # accents: typed or not, composed or written as a combining mark, one name
    assert speaker_matches("Renée Árvalo", "Arvalo") and speaker_matches("Rene\u0301e A\u0301rvalo", "Árvalo")


def test_an_article_written_with_combining_accents_is_stored_composed(make_settings, tmp_path):
    """A scraped page may write "é" as "e" + a combining accent. The article is stored in NFC (the same text to a
    reader), its quotes' speakers too, so a name typed either way finds them; the same page again is unchanged."""
    import unicodedata

    page = tmp_path / "quay.md"
    page.write_text(unicodedata.normalize("NFD", "# Quay works in Quillby\n\n“The stone is here and the crews are "
                                          "ready,” said Renée Árvalo, the harbour master of Quillby.\n"), "utf-8")
    settings = make_settings(tmp_path / "data")
    ingestor = Ingestor(settings)
    assert ingestor.ingest_paths([page]).added == 1
    [rows] = ingestor.store.article_chunks([load_paths([page]).articles[0].id]).values()
    assert all(unicodedata.is_normalized("NFC", text) for _, text, _ in rows)
    assert "Renée Árvalo" in rows[0][1] and "Rene\u0301e" not in rows[0][1]
    for typed in ("Árvalo", "Arvalo", "A\u0301rvalo"):
        [q] = ingestor.archive.quotes.find(speaker=typed)
        assert q.speaker == "Renée Árvalo" and q.quote.startswith("The stone is here"), typed
    again = ingestor.ingest_paths([page])
    assert again.unchanged == 1 and again.added == again.updated == 0


def test_find_about_words_dates_and_outlets(book):
    quotes, articles = book
    about = quotes.find(about="quota court", limit=1000)
    by_id = {a.id: a for a in articles}
    own = {g["quote"] for a in articles for g in gold_of(a) if {"quota", "court"} <= set(tokenize(g["quote"]))}
    assert own and own <= {r.quote for r in about}  # both words in the quote itself
    for r in about:  # or in its sentence (its paragraph holds that sentence)
        body = by_id[r.article_id].body
        paragraph = body[body.rfind("\n", 0, r.start) + 1:body.find("\n", r.end) % (len(body) + 1)]
        assert {"quota", "court"} <= set(tokenize(paragraph)), r.quote
    assert quotes.find(about="quota zeppelin") == []
    window = quotes.find(since="2025-03-03", until="2025-03-05", limit=1000)
    assert window and {r.published_at for r in window} <= {"2025-03-03", "2025-03-04", "2025-03-05"}
    assert {r.published_at for r in window} == {a.published_at for a in articles
                                                if "2025-03-03" <= a.published_at <= "2025-03-05" and gold_of(a)}
    courier = quotes.find(source="calder courier", limit=1000)
    assert courier and {r.source for r in courier} == {"Calder Courier"}
    with pytest.raises(AssistantError, match="YYYY-MM-DD"):
        quotes.find(since="2025-13-01")


def test_a_deleted_article_leaves_the_book(book, make_settings, tmp_path):
    quotes, articles = book
    gone = next(r.article_id for r in quotes.find())
    Ingestor(make_settings(tmp_path / "dated")).delete(gone)
    assert not any(r.article_id == gone for r in quotes.find(limit=1000))


def test_two_processes_on_one_chroma_server_see_each_others_quotes(make_settings, tmp_path, chroma_server):
    host, port = chroma_server
    server = {"store.host": host, "store.port": port}
    writer = Ingestor(make_settings(tmp_path / "writer", **server))
    articles = dated_articles()
    writer.ingest_articles(articles[:4])
    reader = Archive(make_settings(tmp_path / "reader", **server))
    seen = {r.article_id for r in reader.quotes.find(limit=1000)}
    assert seen == {a.id for a in articles[:4] if gold_of(a)}
    writer.ingest_articles(articles[4:5])  # while the reader serves: found at its next query
    late = articles[4]
    assert gold_of(late)
    assert sorted(r.quote for r in reader.quotes.find(limit=1000) if r.article_id == late.id) == sorted(
        g["quote"] for g in gold_of(late))
    writer.delete(articles[0].id)
    assert articles[0].id not in {r.article_id for r in reader.quotes.find(limit=1000)}


def _passages_of(store: Store, article_id: str):
    [rows] = store.article_chunks([article_id]).values()
    return list(store.get_passages([cid for cid, _, _ in rows]).values())


def test_a_cited_quote_carries_its_speaker_and_a_narrative_sentence_none(ingested):
    from assistant.answering.citations import cite

    settings, ingestor, articles = ingested
    a = next(x for x in articles if x.title.startswith("Orrin Island fishers"))
    passages = _passages_of(ingestor.store, a.id)
    named = [(g["quote"], g["speaker"]) for g in gold_of(a) if g["speaker"] and " and " not in g["speaker"]]
    assert named
    for quote, speaker in named:
        p = next(p for p in passages if quote in p.text)
        at = p.start + p.text.index(quote)
        around = [(s, e) for s, e in p.sentence_spans() if s < at + len(quote) and e > at]  # the sentence(s)
        sentence = p.span_text(around[0][0], around[-1][1])
        [c] = cite(quote + " [1]", [p]).citations  # the quote itself
        assert c.quote == quote and c.speaker == speaker and c.to_dict()["speaker"] == speaker
        # its whole sentence: the speaker when at least half of the sentence is the quote, else nobody's
        [c] = cite(sentence + " [1]", [p]).citations
        mostly = any(2 * len(q) >= len(sentence) for q, who in named if who == speaker and q in sentence)
        assert c.quote == sentence and c.speaker == (speaker if mostly else None), sentence
    first = a.body.strip().split("\n\n")[0]  # the narrative opening: nobody's words
    p = next(p for p in passages if first in p.text)
    [c] = cite(first + " [1]", [p]).citations
    assert c.quote == first and c.speaker is None


def test_the_chat_card_shows_the_speaker_escaped():
    from assistant.models import Citation, Passage
    from assistant.web.app import citation_card

    text = "“The tide is ours,” said <b onmouseover=alert(1)>Ossa Vell</b>. The ferry left."
    p = Passage("x:0", "x", text, 0, len(text), "Harbour notes", "Kestrel Ledger", "2025-03-01",
                "https://kestrel.example/a", quotes=[(1, 17, "direct", "<b onmouseover=alert(1)>Ossa Vell</b>", "say")])
    c = Citation(1, "x", p.title, p.source, p.published_at, p.url, text[:19], 0, 19,
                 speaker="<b onmouseover=alert(1)>Ossa Vell</b>", passage=text)
    html_out = citation_card([c], p)
    assert '— &lt;b onmouseover=alert(1)&gt;Ossa Vell&lt;/b&gt;</span>' in html_out
    assert "<b onmouseover" not in html_out
    plain = Citation(2, "x", p.title, p.source, p.published_at, p.url, "The ferry left.", 65, 80, passage=text)
    assert 'class="speaker"' not in citation_card([plain], p)


def test_an_extractor_failure_stores_the_article_without_quotes_and_reindex_reads_it(make_settings, tmp_path,
                                                                                     monkeypatch):
    settings = make_settings(tmp_path / "failing")

    def broken(texts, *a, **k):
        raise OSError("model files missing")

    real = quotes_module.quotes_of_many
    monkeypatch.setattr(quotes_module, "quotes_of_many", broken)
    ingestor = Ingestor(settings)
    articles = load_paths(TEXTS[:2]).articles
    assert ingestor.ingest_articles(articles).added == 2
    [rows] = ingestor.store.article_chunks([articles[0].id]).values()
    assert rows and all("quotes_v" not in m and "quotes" not in m for _, _, m in rows)
    assert ingestor.archive.quotes.find() == []
    monkeypatch.setattr(quotes_module, "quotes_of_many", real)
    assert _reindex_json(settings)["quotes_reread"] == 2
    assert stored(ingestor.store, articles[0].id) == expected_of(articles[0]) != []
