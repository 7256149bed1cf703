"""The end-to-end slice on real parts: corpus/ into Chroma, cited answers, refusals, re-ingest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.answering.chain import Assistant
from assistant.cli import cli
from assistant.index.store import Store
from assistant.ingest.ingestor import Ingestor
from assistant.ingest.loaders import load_file
from tests.support.paths import CORPUS, SEED

FICTIONAL = Path(__file__).parent / "data" / "reliability" / "wire" / "vellmark-coastguard.md"

QUESTION = "Did Russia offer Iran military help?"


def seed_article():
    articles, failures = load_file(SEED)
    assert not failures
    return articles[0]


def test_seed_question_cites_refusal_with_exact_span(corpus_assistant):
    answer = corpus_assistant.ask(QUESTION)
    assert not answer.refused
    seed = seed_article()
    cited = [c for c in answer.citations if c.article_id == seed.id]
    assert cited, answer.answer
    key = [c for c in cited if "will not intervene militarily" in c.quote
           or ("Peskov" in c.quote and "BRICS" in c.quote)]
    assert key, [c.quote for c in cited]
    for c in answer.citations:
        assert f"[{c.n}]" in answer.answer
    for c in cited:  # every citation maps to the exact characters of the article
        assert seed.body[c.start:c.end] == c.quote


def test_unanswerable_question_is_refused(corpus_assistant):
    answer = corpus_assistant.ask("What did the Pope say about the Brazilian election?")
    assert answer.refused
    assert answer.citations == []
    assert "do not cover" in answer.answer
    # the nearest articles are named once each, however many of their passages came back
    titles = {p.title for p in answer.passages}
    assert len({p.article_id for p in answer.passages}) < len(answer.passages)  # the case this checks
    assert all(answer.answer.count(f"“{t}”") == 1 for t in titles)


def test_weakly_matched_answer_carries_a_caution(corpus_assistant, corpus_data_dir):
    """Between answer.min_confidence and answer.caution_below the answer is given with a notice saying so."""
    from assistant.answering.chain import Assistant
    from assistant.config import load_settings

    question = "Did Russia offer Iran military help?"
    confidence = corpus_assistant.retriever.retrieve(question).confidence
    strong = corpus_assistant.ask(question)
    assert confidence >= corpus_assistant.settings.answer.caution_below and strong.notice is None
    cautious = Assistant(load_settings(data_dir=str(corpus_data_dir), **{"answer.caution_below": 0.99}),
                         archive=corpus_assistant.archive)
    answer = cautious.ask(question)
    assert not answer.refused and answer.answer == strong.answer  # the same answer, flagged
    assert "only weakly" in answer.notice and f"{confidence:.2f}" in answer.notice
    refused = cautious.ask("What did the Pope say about the Brazilian election?")
    assert refused.refused and "only weakly" not in (refused.notice or "")  # a refusal needs no caution


def test_reingest_is_idempotent_and_edits_replace_chunks(tmp_path, make_settings):
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    story = corpus / "vellmark-coastguard.md"  # a fictional article to edit: the seed's text is never altered
    shutil.copy(FICTIONAL, story)
    settings = make_settings()
    ingestor = Ingestor(settings)
    first = ingestor.ingest_paths([corpus])
    assert first.added == len(list(corpus.iterdir())) and first.chunks > 0
    again = ingestor.ingest_paths([corpus])
    assert (again.added, again.updated, again.chunks) == (0, 0, 0)
    assert again.unchanged == first.added

    store = Store(settings)
    article = load_file(story)[0][0]
    old_texts = {t for _, t, m in store.iter_chunks() if m["article_id"] == article.id}
    assert len(old_texts) > 1  # several chunks, so a stale one could be left behind
    text = story.read_text(encoding="utf-8")
    story.write_text(text.split("In Durnholt, harbour master")[0] + "Editors cut the rest of this story.\n",
                     encoding="utf-8")
    edited = ingestor.ingest_paths([corpus])
    assert edited.updated == 1 and edited.added == 0
    new = {t: m for _, t, m in store.iter_chunks() if m["article_id"] == article.id}
    assert any("Editors cut the rest" in t for t in new)
    assert not any("herring grounds" in t for t in new)
    assert old_texts != set(new)
    assert len({m["chunk_index"] for m in new.values()}) == len(new)  # no stale chunk left behind


def test_no_chunk_exceeds_model_max_length(tmp_path, make_settings):
    from assistant.ingest.chunking import Chunker
    from assistant.models import Article

    settings = make_settings()
    embedder = Store(settings).embedder
    chunker = Chunker(embedder.tokenizer, embedder.max_seq_length, 400, 40)  # ask for too much
    body = " ".join(f"Sentence number {i} mentions Mayor Oskar Lindel and the harbour summit in Vellmark."
                    for i in range(300)) + " " + "x" * 3000
    article = Article(title="A very long headline " * 10, body=body)
    chunks = chunker.split(article)
    assert len(chunks) > 5
    title = chunker.embed_title(article.title)
    for c in chunks:
        assert body[c.start:c.end] == c.text
        ids = embedder.tokenizer(chunker.embedding_text(title, c.text))["input_ids"]
        assert len(ids) <= embedder.max_seq_length


def test_collection_refuses_another_embedding_model(tmp_path, make_settings):
    from assistant.errors import StoreError

    settings = make_settings()
    Ingestor(settings).ingest_paths([SEED])
    other = make_settings(**{"embedding.model": str(Store(settings).embedder.path)})
    with pytest.raises(StoreError, match="built with embedding model"):
        Store(other).collection()


def test_server_mode_ingest_and_ask(chroma_server, make_settings):
    host, port = chroma_server
    settings = make_settings(**{"store.host": host, "store.port": port})
    report = Ingestor(settings).ingest_paths([CORPUS])
    assert report.added >= 1
    assert Store(settings).stats()["store"] == f"http://{host}:{port}"
    answer = Assistant(settings).ask(QUESTION)
    assert not answer.refused and answer.citations


def test_cli_machine_interface(tmp_path):
    runner = CliRunner()
    data = str(tmp_path / "d")
    bad = tmp_path / "empty.txt"
    bad.write_text("")
    res = runner.invoke(cli, ["ingest", "--json", "--data-dir", data, str(CORPUS), str(bad)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["added"] >= 1 and summary["failed"][0]["path"].endswith("empty.txt")

    res = runner.invoke(cli, ["--data-dir", data, "stats", "--json"])
    stats = json.loads(res.stdout)
    assert set(stats) == {"articles", "chunks", "embedding_model", "store"}
    assert stats["articles"] == summary["added"] and stats["chunks"] > 0

    res = runner.invoke(cli, ["ask", "--json", "--data-dir", data, QUESTION])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"answer", "refused", "citations"}
    assert out["citations"] and set(out["citations"][0]) == {
        "n", "article_id", "title", "source", "published_at", "url", "quote", "start", "end", "speaker"}

    res = runner.invoke(cli, ["ask", "--data-dir", data, "   "])
    assert res.exit_code == 1 and "question is empty" in res.stderr
    # a path that does not exist is the caller's error: exit 2, one line, nothing ingested ...
    res = runner.invoke(cli, ["ingest", "--json", "--data-dir", data, str(CORPUS), str(tmp_path / "typo")])
    assert res.exit_code == 2 and res.stdout == ""
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("Error: no such file or folder: ") and str(tmp_path / "typo") in line
    # ... while a bad file inside an existing folder is reported and the run exits 0
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "empty.md").write_text("")
    res = runner.invoke(cli, ["ingest", "--json", "--data-dir", data, str(folder)])
    assert res.exit_code == 0 and json.loads(res.stdout)["failed"][0]["path"].endswith("empty.md")


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "env-dir"))
    res = CliRunner().invoke(cli, ["ingest", "--json", str(SEED)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "env-dir" / "chroma").is_dir()


def test_empty_store_gives_clear_message(make_settings):
    answer = Assistant(make_settings()).ask(QUESTION)
    assert answer.refused and "archive is empty" in answer.answer
