"""Reliability matrix, row 8: property tests (hypothesis) for the loaders and the chunker (docs/reliability.md)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from assistant.config import load_settings
from assistant.errors import CorpusError
from assistant.ingest.chunking import Chunker
from assistant.ingest.decoding import decode_text
from assistant.ingest.loaders import _load_jsonl, _load_text
from assistant.models import Article
from assistant.text.cleaning import content_regions

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RUSSIAN = "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯёЁ"
WESTERN = "àâäçéèêëîïôöùûüÿñßÀÂÄÇÉÈÊËÎÏÔÖÙÛÜÑ"
ASCII_WORD = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10)
PUNCT = st.sampled_from([" ", " ", ", ", ". ", "! ", "? ", " — ", " «", "» ", "\n", "\n\n", "; ", ": "])


def _joined(words: st.SearchStrategy[str], punct: st.SearchStrategy[str] = PUNCT) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(words, punct), min_size=1, max_size=60).map(lambda xs: "".join(w + p for w, p in xs))


# any printable text in any script, with newlines and tabs but no other control characters
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs"), whitelist_characters="\n\t"), min_size=1,
                   max_size=2000)


# ---------------------------------------------------------------- decode_text


@FAST
@given(ANY_TEXT, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]))
def test_decode_text_round_trips_unicode(text, encoding):
    assume(text.strip() and not text.startswith("\ufeff"))  # a leading U+FEFF is a byte-order mark by design
    assert decode_text(text.encode(encoding)) == text.replace("\r\n", "\n").replace("\r", "\n")


@FAST
@given(_joined(st.one_of(st.text(RUSSIAN, min_size=2, max_size=12), ASCII_WORD)))
def test_decode_text_reads_cp1251_russian(text):
    raw = text.encode("cp1251")
    assume(text.strip() and any(c in RUSSIAN for c in text))
    try:  # bytes that are also valid UTF-8 are ambiguous; UTF-8 wins by design
        raw.decode("utf-8")
        assume(False)
    except UnicodeDecodeError:
        pass
    # "юя"/"яю" in cp1251 are the bytes of a UTF-16 byte-order mark; the BOM wins by design
    assume(not raw.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)))
    assert decode_text(raw) == text


@FAST
@given(_joined(st.builds(lambda a, b, c: a + b + c, st.text("abcdefghijklmnopqrstuvwxyzDLMP", min_size=1, max_size=8),
                         st.text(WESTERN, max_size=2), st.text("abcdefghij", max_size=3)),
               st.sampled_from([" ", ", ", ". ", " - ", " « ", " » ", "\n", "\n\n", "; "])))
def test_decode_text_reads_latin1_western(text):
    raw = text.encode("latin-1")
    assume(text.strip())
    try:
        raw.decode("utf-8")
        assume(text.isascii())
    except UnicodeDecodeError:
        pass
    assert decode_text(raw) == text


@FAST
@given(st.binary(min_size=1, max_size=4000))
def test_decode_text_never_crashes_on_bytes(raw):
    try:
        text = decode_text(raw)
    except CorpusError as e:
        assert e.message in ("empty file", "binary file, not text")
        return
    assert isinstance(text, str) and text.strip() and "\r" not in text and "\x00" not in text


# ---------------------------------------------------------------- front matter and JSONL

LINE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\"'"),
               min_size=1, max_size=60).map(str.strip).filter(bool)


@FAST
@given(title=LINE, source=LINE, author=LINE, body=st.lists(LINE, min_size=1, max_size=8))
def test_front_matter_fields_and_body_survive(title, source, author, body):
    assume(body[0].lstrip("#").strip() != title and not any(x.strip() == "---" for x in [title, *body]))
    text = f"---\ntitle: {title}\nsource: {source}\nauthor: {author}\n---\n\n" + "\n".join(body) + "\n"
    [article], failures = _load_text(Path("a.md"), text.encode("utf-8"))
    assert failures == []
    assert (article.title, article.source, article.author) == (title, source, author)
    assert article.body == "\n".join(body).rstrip()


RECORD = st.fixed_dictionaries({"title": LINE, "body": LINE}, optional={"source": LINE, "url": LINE})
GARBAGE = st.sampled_from(['{"title": "cut', "[1, 2]", '"a string"', "{}", '{"title": "no body"}', "nul\x00l",
                           '{"title": ["list"], "body": "x"}', "}{"])


def _is_article(line: str) -> bool:
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return (isinstance(obj, dict) and all(isinstance(obj.get(k), str) and obj[k].strip() for k in ("title", "body"))
            and all(isinstance(obj.get(k), (str, type(None))) for k in ("source", "url")))


@FAST
@given(st.lists(st.one_of(RECORD.map(json.dumps), GARBAGE, st.just("")), min_size=1, max_size=30))
def test_jsonl_keeps_good_lines_and_numbers_bad_ones(lines):
    assume(any(line.strip() for line in lines))
    raw = "\n".join(lines).encode("utf-8")
    try:
        articles, failures = _load_jsonl(Path("x.jsonl"), raw)
    except CorpusError:  # the whole file is binary/empty: nothing to number
        return
    good = [n for n, line in enumerate(lines, 1) if _is_article(line)]
    assert [a.title for a in articles] == [json.loads(lines[n - 1])["title"].strip() for n in good]
    bad = {n for n, line in enumerate(lines, 1) if line.strip() and n not in good}
    assert {f.line for f in failures} == bad


# ---------------------------------------------------------------- chunker


@pytest.fixture(scope="module")
def chunker():
    from assistant.index.embedder import Embedder

    e = Embedder.shared(load_settings().embedding)
    return Chunker(e.tokenizer, e.max_seq_length, 160, 24)


WORDY = st.text(st.characters(blacklist_categories=("Cc", "Cs"), whitelist_characters="\n\n\n "), min_size=1,
                max_size=3000)
PROSE = _joined(st.one_of(ASCII_WORD, st.text(RUSSIAN, min_size=1, max_size=10),
                          st.text("ابتثجحخدذرزسشصضطظعغفقكلمنهوي", min_size=1, max_size=10),
                          st.text("x", min_size=50, max_size=400)))  # very long "words" force character splits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(title=st.text(min_size=0, max_size=400), body=st.one_of(WORDY, PROSE))
@example(title="Budget", body="By Jane Doe\n\nThe council met.\n\nRead more: other story\n\nIt voted.")
def test_chunks_map_back_fit_the_limit_and_cover_every_character(chunker, title, body):
    assume(body.strip())
    article = Article(title=title or "t", body=body)
    regions = content_regions(body)
    chunks = chunker.split(article, regions)
    embed_title = chunker.embed_title(article.title)
    for i, c in enumerate(chunks):
        assert c.index == i and c.id == f"{article.id}:{i}"
        assert body[c.start:c.end] == c.text and c.text.strip()
        assert chunker.count(chunker.embedding_text(embed_title, c.text)) <= chunker.limit
        for s, e in c.sentences:
            assert c.start <= s < e <= c.end
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    for rs, re_ in regions:
        missing = [i for i in range(rs, re_) if not body[i].isspace() and i not in covered]
        assert not missing, (body[rs:re_][:200], [body[i] for i in missing[:20]])


def test_decode_text_boms():
    """The byte-order marks decode_text promises to honour."""
    for bom, enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                     (codecs.BOM_UTF16_BE, "utf-16-be")):
        assert decode_text(bom + "Привет, мир".encode(enc)) == "Привет, мир"
