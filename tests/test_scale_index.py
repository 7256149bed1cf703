"""The incremental keyword index (issue 15 parts 1 and 2): tantivy over our tokens, a derived cache that any
process brings in step with the store from its change log (a sequence per chunk, tombstones for deletions).

Fictional articles only (invented towns, outlets and people; `.example` URLs)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import assistant.index.lexical as lexical
from assistant.index.lexical import LexicalIndex
from assistant.text.words import tokenize
from tests.support.archives import FakeStore, article, chunk, write_jsonl
from tests.support.paths import ROOT


@pytest.fixture
def store_and_index(tmp_path):
    src = FakeStore()
    src.write({
        "a:0": chunk("Ferry strike in Velmora", "The Velmora ferry crews walked out over night shifts.", 20250301,
                     "Velmora Courier"),
        "b:0": chunk("Orchard frost in Quillby", "Frost hit the Quillby orchards; growers counted losses.", 20250310,
                     "Quillby Post"),
        "c:0": chunk("Velmora harbour budget", "Harbour fees in Velmora rise to pay for a new breakwater.", None, None),
    })
    index = LexicalIndex(tmp_path / "lex", source=src)
    report = index.sync()
    assert report.rebuilt and report.upserted == 3
    return src, index


def test_search_ranks_by_bm25_over_our_tokens_and_filters_in_the_query(store_and_index):
    src, index = store_and_index
    assert len(index) == 3 and index.ids == ["a:0", "b:0", "c:0"]
    assert index.sources == ["Quillby Post", "Velmora Courier"]
    hits = index.search("Velmora ferry strike", 10)
    assert [cid for cid, _ in hits][:2] == ["a:0", "c:0"] and hits[0][1] > hits[1][1] > 0
    assert index.search("nothing matches zzyzx", 10) == [] and index.search("the of and", 10) == []
    # a date window: undated chunks are out as soon as the window has an end
    assert [c for c, _ in index.search("Velmora Quillby", 10, index.mask(20250305, None, None))] == ["b:0"]
    assert {c for c, _ in index.search("Velmora Quillby", 10, index.mask(None, 20250305, None))} == {"a:0"}
    # outlets: case-insensitive substring of the chunk's source, as before
    assert [c for c, _ in index.search("Velmora Quillby", 10, index.mask(sources=["courier"]))] == ["a:0"]
    assert index.search("Velmora", 10, index.mask(sources=["Nowhere Gazette"])) == []
    assert index.mask() is None


def test_idf_is_the_bm25_formula_on_document_frequency(store_and_index):
    import math

    _, index = store_and_index
    idf = index.idf(["velmora", "quillby", "unseenword"])
    assert idf["velmora"] == pytest.approx(math.log(1 + (3 - 2 + 0.5) / (2 + 0.5)))
    assert idf["quillby"] == pytest.approx(math.log(1 + (3 - 1 + 0.5) / (1 + 0.5)))
    assert idf["unseenword"] == pytest.approx(math.log(1 + 3.5 / 0.5))  # the maximum


def test_words_with_inner_punctuation_are_indexed_whole(tmp_path):
    src = FakeStore()
    text = "The covid-19 ward of O'Dara clinic in Straße-Nord; 3.5 km from the U.S. line."
    src.write({"x:0": chunk("", text)})
    index = LexicalIndex(tmp_path / "lex", source=src)
    index.sync()
    for token in tokenize(text):
        assert [c for c, _ in index.search(token, 5)] == ["x:0"], token
        assert index.idf([token])[token] < index.idf(["absentword"])["absentword"]


def test_an_accented_name_is_found_however_it_is_written(tmp_path):
    """A scraped page may write an accent as its own character (e + a combining accent); a journalist types
    é, or no accent at all: all three are one word, and Cyrillic keeps its marks (й is not и)."""
    src = FakeStore()
    src.write({"n:0": chunk("", "Rene\u0301e A\u0301rvalo opened the Quillby ferry."),
               "c:0": chunk("", "Паром в Йорвале.")})
    index = LexicalIndex(tmp_path / "lex", source=src)
    index.sync()
    for query in ("Renée Árvalo", "Rene\u0301e A\u0301rvalo", "Renee Arvalo", "RENÉE"):
        assert [c for c, _ in index.search(query, 5)] == ["n:0"], query
    assert [c for c, _ in index.search("йорвале", 5)] == ["c:0"] and index.search("иорвале", 5) == []


def test_an_ingest_costs_what_it_changes(store_and_index):
    src, index = store_and_index
    before = src.reads
    src.write({"d:0": chunk("Quillby tram returns", "Trams run again in Quillby after ten years.", 20250320)})
    report = index.sync()
    assert not report.rebuilt and report.upserted == 1 and src.reads - before == 1  # one chunk read, not four
    assert [c for c, _ in index.search("Quillby tram", 1)] == ["d:0"]
    assert index.sync().upserted == 0  # nothing new: nothing read or written
    assert src.reads - before == 1


def _own(src: FakeStore, rows: dict[str, tuple[str, dict]], deleted: tuple[str, ...] = ()):
    """Write rows as this process would and return the write (`Store.write`'s Written)."""
    from assistant.index.store import Written

    src.write(rows, deleted)
    return Written(src.head, [(cid, text, {**meta, "seq": src.head}) for cid, (text, meta) in rows.items()],
                   list(deleted))


def test_a_write_of_this_process_is_applied_without_reading_it_back(store_and_index):
    """The index at the sequence before the write, the store's head at the write's: the rows are indexed as
    written; after another writer's change in between, the change log is read as usual."""
    src, index = store_and_index
    before = src.reads
    own = _own(src, {"d:0": chunk("Quillby tram returns", "Trams run again in Quillby after ten years.")},
               deleted=("c:0",))
    report = index.sync(written=own)
    assert (report.upserted, report.deleted, report.seq, src.reads) == (1, 1, own.seq, before)
    assert [c for c, _ in index.search("Quillby tram", 1)] == ["d:0"] and not index.search("breakwater", 3)

    src.write({"e:0": chunk("Velmora lighthouse", "The Velmora lighthouse keeper retires in May.")})  # another host
    own = _own(src, {"f:0": chunk("Quillby bakery", "The Quillby bakery opens a second oven.")})
    report = index.sync(written=own)
    assert report.upserted == 2 and src.reads == before + 2 and report.seq == own.seq
    assert [c for c, _ in index.search("lighthouse keeper", 1)] == ["e:0"]


def test_edits_and_deletions_follow_the_change_log(store_and_index):
    src, index = store_and_index
    src.write({"a:0": chunk("Ferry strike ends in Velmora", "Crews accept the Velmora night-shift deal.")},
              delete=("b:0",))
    report = index.sync()
    assert (report.upserted, report.deleted, report.rebuilt) == (1, 1, False)
    assert index.ids == ["a:0", "c:0"]
    assert index.search("orchards frost", 5) == []
    assert [c for c, _ in index.search("deal", 5)] == ["a:0"]
    # deleted, then written again by a later write (both after the index's last sync): the chunk stays
    src.write({}, delete=("c:0",))
    src.write({"c:0": chunk("Velmora harbour budget", "Harbour fees rise again.")})
    index.sync()
    assert index.ids == ["a:0", "c:0"]
    assert index.status()["in_step"] is True


def test_tokenizer_change_collection_reset_and_full_rebuild(store_and_index, monkeypatch):
    src, index = store_and_index
    monkeypatch.setattr(lexical, "TOKENIZER_VERSION", "another-tokenizer")
    assert index.status()["in_step"] is False
    assert index.sync().rebuilt
    assert index.status()["in_step"] is True
    src.ident = "col-2"  # the collection was dropped and made anew
    assert index.sync().rebuilt
    assert index.sync(full=True).rebuilt and len(index) == 3


def test_a_mask_taken_before_an_ingest_still_filters_after_it(store_and_index):
    """Old code: the mask was an array per indexed chunk, so a reload between `mask` and `search` (an ingest
    landing mid-question) broke the query (arrays of different lengths) or shifted the filter."""
    src, index = store_and_index
    index.SYNC_SECONDS = 0
    mask = index.mask(sources=["Quillby"])
    src.write({"e:0": chunk("Quillby bridge", "Quillby orchards bridge opens.", 20250401, "Quillby Post"),
               "f:0": chunk("Velmora ferry again", "Velmora ferry orchards.", 20250401, "Velmora Courier")})
    assert {c for c, _ in index.search("orchards", 10, mask)} == {"b:0", "e:0"}


def test_another_reader_sees_commits_of_the_writer(store_and_index):
    src, writer = store_and_index
    reader = LexicalIndex(writer.path)  # no source: reads what others commit, reloading every SYNC_SECONDS
    reader.SYNC_SECONDS = 0
    assert len(reader) == 3
    src.write({"g:0": chunk("Marlow dam", "The Marlow dam inspection.")})
    writer.sync()
    assert [c for c, _ in reader.search("Marlow dam", 3)] == ["g:0"]


# -- on the real store -------------------------------------------------------------------------------

def distinct_article(i: int) -> dict:
    """A fictional article whose words no other one shares (no copy candidates between them)."""
    words = " ".join(f"Brenn{i}x{j}" for j in range(60))
    return {"title": f"Brennick notice {i}", "source": "Brennick Ledger", "published_at": "2025-06-02",
            "url": f"https://brennick-ledger.example/notice/{i}", "body": f"Notice {i} lists {words}."}


def test_a_one_article_ingest_reads_its_own_rows_not_the_archive(make_settings, tmp_path, monkeypatch):
    """What an ingest reads from the store does not grow with the archive: the incoming article's rows by
    id, the change log, its own new chunks for the keyword index (not every article's manifest row)."""
    from assistant.index.chroma import Chroma
    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import load_paths

    rows_read: list[int] = []
    real_call = Chroma.call

    def counting(self, what, method, *args, **kwargs):
        got = real_call(self, what, method, *args, **kwargs)
        if method == "get" and got:
            rows_read.append(len(got["ids"]))
        return got

    monkeypatch.setattr(Chroma, "call", counting)

    def rows_for_one_more(n: int) -> int:
        ingestor = Ingestor(make_settings(tmp_path / f"archive{n}"))
        archive = load_paths([write_jsonl(tmp_path / f"a{n}.jsonl", [distinct_article(i) for i in range(n)])])
        assert ingestor.ingest_articles(archive.articles).added == n
        rows_read.clear()
        one = load_paths([write_jsonl(tmp_path / f"b{n}.jsonl", [distinct_article(1000)])]).articles
        assert ingestor.ingest_articles(one).added == 1
        return sum(rows_read)

    small, large = rows_for_one_more(2), rows_for_one_more(40)
    assert large == small, (small, large)
    assert small <= 6, small


def test_store_chunks_carry_a_sequence_and_deletions_leave_tombstones(make_settings, tmp_path):
    from assistant.index.lexical import lexical_path
    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import load_paths

    settings = make_settings()
    ing = Ingestor(settings)
    arts = load_paths([write_jsonl(tmp_path / "a.jsonl", [article(i, "Harrowgate") for i in range(3)])]).articles
    ing.ingest_articles(arts)
    head = ing.store.change_head()
    seqs = {meta["seq"] for _, _, meta in ing.store.iter_chunks()}
    assert head is not None and seqs and max(seqs) == head
    victim = arts[0].id
    n = ing.delete(victim)
    assert n >= 1 and ing.store.change_head() == head + 1
    assert {cid.rsplit(":", 1)[0] for cid, _ in ing.store.deletions_since(head)} == {victim}
    index = LexicalIndex(lexical_path(settings))
    assert not any(cid.startswith(victim) for cid in index.ids)
    assert set(index.ids) == {cid for cid, _, _ in ing.store.iter_chunks()}


def test_emptiness_and_dense_search_need_no_count_of_the_store(make_settings, tmp_path, monkeypatch):
    """Counting a million chunks, or reading one with a limit, costs more than a search: a question asks
    Chroma for neither."""
    import numpy as np

    from assistant.answering.chain import Assistant
    from assistant.index.chroma import Chroma
    from assistant.index.store import Store
    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import load_paths

    settings = make_settings()
    assert Store(settings).is_empty()
    arts = load_paths([write_jsonl(tmp_path / "a.jsonl", [article(i, "Harrowgate") for i in range(2)])]).articles
    Ingestor(settings).ingest_articles(arts)
    store = Store(settings)
    assert not store.is_empty()
    held = sum(1 for _ in store.iter_chunks())
    monkeypatch.setattr(Store, "count", lambda self: (_ for _ in ()).throw(AssertionError("count() called")))
    vec = store.embedder.embed(["Harrowgate"])[0]
    assert len(store.dense_search(np.asarray(vec), k=500)) == held  # more asked than held: all it holds
    scans, real_call = [], Chroma.call

    def watched(self, what, method, *args, **kwargs):  # a `get` with a limit and no ids goes through it all
        if method == "get" and kwargs.get("limit") and not kwargs.get("ids"):
            scans.append(kwargs)
        return real_call(self, what, method, *args, **kwargs)

    monkeypatch.setattr(Chroma, "call", watched)
    answer = Assistant(settings).ask("What happened in Harrowgate?")
    assert answer.citations and not scans, scans


@pytest.mark.subprocess
def test_reindex_command_and_stats_say_whether_the_index_is_in_step(make_settings, tmp_path):
    data = tmp_path / "data"
    src = write_jsonl(tmp_path / "a.jsonl", [article(i, "Olmfield") for i in range(2)])
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin"}

    def run(*args):
        out = subprocess.run([sys.executable, "-m", "assistant", *args, "--data-dir", str(data)], cwd=ROOT,
                             capture_output=True, text=True, timeout=240, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    run("ingest", str(src))
    assert "keyword index: in step" in run("stats")
    assert set(json.loads(run("stats", "--json"))) == {"articles", "chunks", "embedding_model", "store"}
    import shutil

    shutil.rmtree(data / "lexical")
    assert "keyword index: behind the store" in run("stats")
    out = run("reindex")
    assert "rebuilt" in out and "chunks" in out
    assert "keyword index: in step" in run("stats")
    [meta] = (data / "lexical").rglob("meta.json")  # a corrupt cache is made anew, not a traceback
    meta.write_text("{not json")
    out = run("reindex")
    assert "rebuilt" in out and "chunks" in out
    assert "keyword index: in step" in run("stats")


def test_a_server_on_another_data_dir_answers_hybrid_and_sees_new_articles(make_settings, tmp_path, chroma_server):
    """Two data dirs against one Chroma server: the one that never ingested builds its keyword index from the
    store and follows the other's ingests within seconds."""
    from assistant.answering.chain import Assistant
    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import load_paths

    host, port = chroma_server
    writer = Ingestor(make_settings(tmp_path / "writer", **{"store.host": host, "store.port": port}))
    first = load_paths([write_jsonl(tmp_path / "a.jsonl", [article(i, "Tarnwick") for i in range(3)])]).articles
    writer.ingest_articles(first)
    reader = Assistant(make_settings(tmp_path / "reader", **{"store.host": host, "store.port": port}))
    hits = reader.lexical.search("Vantol1 lockkeeper", 3)
    assert hits and hits[0][0].startswith(first[1].id)  # keyword search works on a data dir that never ingested
    assert not (tmp_path / "reader" / "ingest.lock").exists()

    late = load_paths([write_jsonl(tmp_path / "b.jsonl", [article(7, "Ebbenmoor")])]).articles
    writer.ingest_articles(late)
    t0 = time.monotonic()
    while not reader.lexical.search("Ebbenmoor basin", 3):
        assert time.monotonic() - t0 < 10, "the reader never saw the new article"
        time.sleep(0.1)
    seen_after = time.monotonic() - t0
    assert seen_after < LexicalIndex.SYNC_SECONDS + 5
    retrieval = reader.retriever.retrieve("What did lockkeeper Idris Vantol7 say about Ebbenmoor?")
    assert retrieval.passages[0].article_id == late[0].id


def test_a_query_never_waits_for_another_process_sync(store_and_index):
    """While another process holds the index's write lock (a rebuild can take a while), a query reads the
    last commit at once instead of queueing behind it; once the lock is free, the next query syncs."""
    import fcntl

    src, index = store_and_index
    index.SYNC_SECONDS = 0
    src.write({"h:0": chunk("Selkirk mill", "The Selkirk mill reopens.")})
    with open(index.path / "write.lock", "a+") as other:  # flock: another open file, as another process
        fcntl.flock(other, fcntl.LOCK_EX)
        t0 = time.monotonic()
        assert index.search("Selkirk mill", 3) == [] and len(index) == 3
        assert time.monotonic() - t0 < 5
        fcntl.flock(other, fcntl.LOCK_UN)
    assert [c for c, _ in index.search("Selkirk mill", 3)] == ["h:0"]


def test_ingest_hosts_on_one_chroma_server_take_turns_through_the_store_lease(make_settings, tmp_path,
                                                                               chroma_server, caplog):
    """Another host's unexpired lease makes an ingest wait (nothing written meanwhile); released, it goes on;
    an expired lease (a crashed host) does not block."""
    import logging
    import threading

    from assistant.ingest.ingestor import Ingestor
    from assistant.ingest.loaders import load_paths

    host, port = chroma_server
    server = {"store.host": host, "store.port": port}
    ing = Ingestor(make_settings(tmp_path / "host-b", **server))
    other = Ingestor(make_settings(tmp_path / "host-a", **server)).store
    assert other.lease.take("host-a:1:crashed", ttl=-1) is None  # a lease that has expired: its holder crashed
    arts = load_paths([write_jsonl(tmp_path / "a.jsonl", [article(i, "Pollock Vale") for i in range(2)])]).articles
    assert ing.ingest_articles(arts[:1]).added == 1
    assert ing.store.lease.get()["holder"] == ""  # released after the run

    assert other.lease.take("host-a:1:alive", ttl=120) is None
    caplog.set_level(logging.WARNING, logger="assistant.ingest.ingestor")
    done: list = []
    t = threading.Thread(target=lambda: done.append(ing.ingest_articles(arts[1:])))
    t.start()
    deadline = time.monotonic() + 30
    while "holds the store's write lease" not in caplog.text:
        assert time.monotonic() < deadline, "the second host never waited for the lease"
        time.sleep(0.05)
    assert not done and ing.store.chunk_ids(arts[1].id) == []  # waiting: nothing written
    other.lease.release("host-a:1:alive")
    t.join(60)
    assert done and done[0].added == 1


def test_malformed_copy_signatures_do_not_break_the_index(tmp_path):
    """A manifest row's signature is data (a restored or edited backup): one that is not 64 integers is left
    out of the copy bands, and the index still builds; a sound one is found by its bands."""
    from assistant.text.duplicates import Signature

    sound = Signature.of(" ".join(f"Quillby{i} ferry" for i in range(40)))
    rows = {f"bad{i}:0": chunk("Velmora notice", f"notice {i}") for i in range(6)}
    for (cid, (_, meta)), bad in zip(rows.items(), ["not json", "[1, 2]", '{"a": 1}', "5", '["x"] ', "[1.5]"]):
        meta.update(chunk_index=0, minhash=bad, shingles="many" if bad == "5" else 9)
    rows["good:0"] = chunk("Quillby ferry", "Quillby ferry notice")
    rows["good:0"][1].update(chunk_index=0, **sound.to_meta())
    src = FakeStore()
    src.write(rows)
    index = LexicalIndex(tmp_path / "lex", source=src)
    assert index.sync().upserted == 7
    assert index.copy_candidates(sound.lookup_bands()) == ["good"]
    assert [c for c, _ in index.search("Velmora notice", 10)]


def test_hostile_text_is_indexed_without_breaking_the_index(tmp_path):
    """Article text is untrusted: a 70,000-character word (over tantivy's term limit), NUL and replacement
    characters, query syntax in the text and the question."""
    src = FakeStore()
    src.write({"x:0": chunk("Harbour log", "a" * 70_000 + " harbour " + "é" * 40_000),
               "y:0": chunk("", "\x00 weird \ufffd OR title:* AND (NOT \"x"),
               "z:0": chunk("", "harbour tides")})
    index = LexicalIndex(tmp_path / "lex", source=src)
    assert index.sync().upserted == 3
    assert {c for c, _ in index.search("harbour", 5)} == {"x:0", "z:0"}
    assert [c for c, _ in index.search('weird" OR * title:(', 5)] == ["y:0"]
