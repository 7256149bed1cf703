"""Tests for assistant.loaders: every supported format, bad input, encodings and folder walking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.errors import CorpusError
from assistant.ingest.decoding import decode_text
from assistant.ingest.loaders import (
    LoadFailure,
    articles_from_records,
    iter_files,
    load_file,
    load_paths,
)

DATA = Path(__file__).parent / "data" / "loaders"


def load_one(path: Path):
    articles, failures = load_file(path)
    assert failures == [], failures
    assert len(articles) == 1
    return articles[0]


def load_fail(path: Path) -> LoadFailure:
    articles, failures = load_file(path)
    assert articles == []
    assert len(failures) == 1
    return failures[0]


# ---------------------------------------------------------------- txt / md


def test_txt_with_front_matter():
    a = load_one(DATA / "front_matter.txt")
    assert a.title == "City council approves new budget"
    assert a.source == "Harbour Times"
    assert a.author == "Jan Novak"
    assert a.published_at == "2025-01-10"  # "January 10, 2025" via the `date` alias
    assert a.url == "https://harbour-times.example/budget-2025"
    assert a.body == ("The city council approved a budget of 1.2 billion euros on Thursday.\n\n"
                      "Spending on schools rises by 4 percent, the finance committee said.")
    assert a.origin == str(DATA / "front_matter.txt")


def test_txt_without_front_matter_first_line_is_title():
    a = load_one(DATA / "plain.txt")
    assert a.title == "Storm closes ferry routes"
    assert a.body == ("Three ferry routes were suspended on Monday as winds reached 110 km/h.\n"
                      "Operators expect services to resume on Wednesday.")
    assert a.source is None and a.published_at is None


def test_markdown_heading_is_title():
    a = load_one(DATA / "heading.md")
    assert a.title == "Museum reopens its east wing"
    assert a.body.startswith("After a year of renovation")
    assert "# Museum" not in a.body


@pytest.mark.parametrize("value", ["2025-01-10", "2025-01-10T12:00:00Z", "January 10, 2025", "10.01.2025",
                                   "Fri, 10 Jan 2025 08:00:00 GMT"])
def test_front_matter_date_formats(tmp_path, value):
    f = tmp_path / "a.txt"
    f.write_text(f"---\ntitle: T\npublished_at: {value}\n---\nBody text.\n", encoding="utf-8")
    assert load_one(f).published_at == "2025-01-10"


def test_unparsable_date_is_none_with_warning(tmp_path, caplog):
    f = tmp_path / "a.txt"
    f.write_text("---\ntitle: T\ndate: sometime soon\n---\nBody text.\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="assistant.ingest.decoding"):
        assert load_one(f).published_at is None
    assert "sometime soon" in caplog.text


def test_title_without_body_is_failure(tmp_path):
    f = tmp_path / "only_title.txt"
    f.write_text("Just a headline\n\n   \n", encoding="utf-8")
    assert load_fail(f).reason == "no body text"


def test_unclosed_front_matter_is_failure(tmp_path):
    f = tmp_path / "a.md"
    f.write_text("---\ntitle: T\nBody text without a closing fence.\n", encoding="utf-8")
    assert "never closed" in load_fail(f).reason


def test_crlf_and_stray_nul_are_cleaned(tmp_path):
    f = tmp_path / "win.txt"
    filler = b"word " * 2000  # NUL only past the first 8 KB: text with a stray NUL, not binary
    f.write_bytes(b"Title line\r\n\r\n" + filler + b"\r\nFirst para\x00graph.\r\nSecond line.\r\n")
    a = load_one(f)
    assert a.title == "Title line"
    assert a.body.endswith("\nFirst paragraph.\nSecond line.")
    assert "\r" not in a.body
    g = tmp_path / "nul.jsonl"
    g.write_text('{"title": "T\\u0000", "body": "a\\r\\nb\\u0000c"}\n', encoding="utf-8")
    assert (load_one(g).title, load_one(g).body) == ("T", "a\nbc")


# ---------------------------------------------------------------- html


def test_html_news_page():
    a = load_one(DATA / "news_page.html")
    assert a.title == "Harbour bridge reopens after two years of repairs"
    assert a.published_at == "2025-01-10"
    assert a.author == "Maria Lindqvist"
    assert a.source == "Coastal Daily"
    assert a.url == "https://coastal-daily.example/news/harbour-bridge-reopens"
    for fragment in ("reopened to traffic on Friday morning", "replaced the corroded steel cables",
                     "Mayor Anders Holm", "footfall had dropped by almost a third"):
        assert fragment in a.body
    for junk in ("Subscribe to our newsletter", "Politics", "Copyright 2025", "Privacy policy",
                 "Related:", "Ferry workers announce", "window.analytics", "font-family"):
        assert junk not in a.body
    assert not a.body.startswith(a.title)  # the repeated <h1> is not part of the body


def test_malformed_html_does_not_raise():
    a = load_one(DATA / "malformed.html")
    assert a.title == "Budget vote delayed"
    assert "The budget vote was delayed by a week" in a.body
    assert "Councillors could not agree on transport spending." in a.body


def test_tiny_html_falls_back_to_plain_text(tmp_path):
    f = tmp_path / "tiny.htm"
    f.write_text("<html><head><style>p{}</style><script>var x=1;</script></head>"
                 "<body><p>Polls open</p><p>Voting starts at 8.</p></body></html>", encoding="utf-8")
    a = load_one(f)
    assert "Voting starts at 8." in a.body
    assert "var x" not in a.body and "p{}" not in a.body


def test_cp1251_html_with_meta_charset(tmp_path):
    f = tmp_path / "ru.html"
    f.write_bytes('<html><head><meta charset="windows-1251"><title>Погода</title></head>'
                  '<body><p>Завтра в Северолесске ожидается снег.</p></body></html>'.encode("cp1251"))
    a = load_one(f)
    assert "Завтра в Северолесске ожидается снег." in a.body


def test_html_without_text_is_failure(tmp_path):
    f = tmp_path / "empty.html"
    f.write_text("<html><head><script>var a = 1;</script></head><body>  </body></html>", encoding="utf-8")
    assert load_fail(f).reason == "no article text found in HTML"


# ---------------------------------------------------------------- json / jsonl


def test_json_single_object_with_aliases():
    a = load_one(DATA / "single.json")
    assert a.title == "Rail strike called off"
    assert a.body.startswith("Unions called off")  # from "content"
    assert (a.source, a.author) == ("Metro Wire", "Ana Ruiz")
    assert a.published_at == "2025-01-10"  # from "published"
    assert a.url == "https://metro-wire.example/rail-strike"
    assert a.origin == str(DATA / "single.json")


def test_json_list_keeps_good_items_and_reports_bad():
    articles, failures = load_file(DATA / "list.json")
    assert [a.title for a in articles] == ["Airport expansion approved", "Library hours extended"]
    assert articles[0].published_at == "2025-02-03"
    assert articles[1].body.startswith("Public libraries")  # from "text"
    assert articles[1].origin == f"{DATA / 'list.json'}#item 2"
    assert failures == [LoadFailure(str(DATA / "list.json"), "item 3: missing body", 13)]


def test_json_articles_wrapper(tmp_path):
    f = tmp_path / "wrapped.json"
    f.write_text('{"articles": [{"title": "A", "body": "Alpha."}, {"title": "B", "body": "Beta."}]}')
    articles, failures = load_file(f)
    assert [a.body for a in articles] == ["Alpha.", "Beta."] and failures == []


def test_truncated_json_list_recovers_complete_items():
    articles, failures = load_file(DATA / "truncated_list.json")
    assert [a.title for a in articles] == ["Water prices to rise", "New cycle lanes open"]
    assert len(failures) == 1
    assert failures[0].line == 10  # where the broken third item starts
    assert failures[0].reason.startswith("invalid JSON")
    assert "item 3" in failures[0].reason


def test_json_list_cut_after_a_complete_item(tmp_path):
    f = tmp_path / "cut.json"
    f.write_text('[\n{"title": "A", "body": "Alpha."},\n', encoding="utf-8")
    articles, failures = load_file(f)
    assert [a.title for a in articles] == ["A"]
    assert len(failures) == 1 and failures[0].line == 3


def test_invalid_json_object_reports_line(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{\n  "title": "A",\n  "body": "x"\n  "source": "y"\n}\n', encoding="utf-8")
    fail = load_fail(f)
    assert fail.reason.startswith("invalid JSON")
    assert fail.line == 4


def test_jsonl_bad_line_others_ingested():
    articles, failures = load_file(DATA / "bad_line.jsonl")
    assert [a.title for a in articles] == ["Port traffic record", "Snow expected"]
    assert articles[1].origin == f"{DATA / 'bad_line.jsonl'}#line 4"
    assert articles[1].published_at == "2025-01-12"
    assert [(f.line, f.reason.split(":")[0]) for f in failures] == [(3, "invalid JSON"), (5, "missing body")]


def test_articles_from_records():
    records = [{"title": "A", "body": "Alpha."}, {"title": "B"}, {"body": "no title"}, "oops",
               {"title": "C", "body": ["not", "text"]}]
    articles, failures = articles_from_records(records, "api")
    assert [(a.title, a.origin) for a in articles] == [("A", "api#item 1")]
    assert [f.reason for f in failures] == [
        "item 2: missing body", "item 3: missing title", "item 4: not a JSON object (str)",
        "item 5: field 'body' is a list, not text"]


# ---------------------------------------------------------------- pdf


def make_pdf(page_content: bytes | None, title: str | None = None) -> bytes:
    """A minimal valid one-page PDF with a correct xref table; no page content stream if None."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"]
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >>"
    objects.append(page + (b" /Contents 5 0 R >>" if page_content is not None else b" >>"))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    if page_content is not None:
        objects.append(b"<< /Length %d >>\nstream\n" % len(page_content) + page_content + b"\nendstream")
    if title:
        objects.append(b"<< /Title (" + title.encode("latin-1") + b") >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


TEXT_STREAM = b"BT /F1 12 Tf 72 720 Td (Tram fares frozen) Tj 0 -20 Td (Fares stay at 2 euros in 2025.) Tj ET"


def test_pdf_with_text_layer(tmp_path):
    f = tmp_path / "fares.pdf"
    f.write_bytes(make_pdf(TEXT_STREAM))
    a = load_one(f)
    assert a.title == "Tram fares frozen"
    assert "Fares stay at 2 euros in 2025." in a.body


def test_pdf_title_from_metadata(tmp_path):
    f = tmp_path / "fares.pdf"
    f.write_bytes(make_pdf(TEXT_STREAM, title="Transport news"))
    assert load_one(f).title == "Transport news"


def test_pdf_without_text_layer(tmp_path):
    f = tmp_path / "scan.pdf"
    f.write_bytes(make_pdf(None))
    assert load_fail(f).reason == "PDF has no text layer (scanned?); run OCR first"


def test_corrupt_pdf(tmp_path):
    f = tmp_path / "broken.pdf"
    f.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage garbage\n")
    assert load_fail(f).reason.startswith("corrupt or unreadable PDF")
    f.write_bytes(b"<html>not a pdf at all</html>")
    assert load_fail(f).reason == "not a PDF file (no %PDF header)"


def test_deeply_nested_json_does_not_crash(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000, encoding="utf-8")
    assert load_fail(f).reason == "data nested too deeply to parse"


def test_encrypted_pdf(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret", algorithm="RC4-128")
    f = tmp_path / "locked.pdf"
    with open(f, "wb") as fh:
        writer.write(fh)
    assert "encrypted" in load_fail(f).reason


# ---------------------------------------------------------------- encodings and bad bytes


def test_empty_and_whitespace_files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_bytes(b"  \n\t\r\n ")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf\n")
    for name in ("empty.txt", "blank.md", "bom.txt"):
        assert load_fail(tmp_path / name).reason == "empty file"


def test_binary_renamed_txt(tmp_path):
    f = tmp_path / "photo.txt"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    assert load_fail(f).reason == "binary file, not text"
    with pytest.raises(CorpusError):
        decode_text(b"\x01\x02\x03\x04\x05\x06abc")


def test_cp1251_russian(tmp_path):
    title, body = "Новости Северолесска", "В понедельник в городе открылась новая станция метро."
    f = tmp_path / "ru.txt"
    f.write_bytes(f"{title}\n\n{body}\n".encode("cp1251"))
    a = load_one(f)
    assert a.title == title
    assert a.body == body


def test_latin1_text(tmp_path):
    f = tmp_path / "fr.txt"
    f.write_bytes("Le café du port\n\nLe café a rouvert après l'été, déjà complet à midi.\n".encode("latin-1"))
    a = load_one(f)
    assert a.title == "Le café du port"
    assert a.body == "Le café a rouvert après l'été, déjà complet à midi."


def test_cp1252_smart_quotes():
    assert decode_text("“Quoted” – dash".encode("cp1252")) == "“Quoted” – dash"


def test_utf8_bom_and_utf16(tmp_path):
    assert decode_text("\ufeffTitle\nBody".encode("utf-8")) == "Title\nBody"
    assert decode_text("Заголовок\r\nТекст".encode("utf-16")) == "Заголовок\nТекст"


@pytest.mark.parametrize("title, body", [
    ("خبرگزاری: بازگشایی مدارس", "مدارس نارین‌دشت از شنبه بازگشایی می‌شوند و کلاس‌ها حضوری برگزار خواهد شد."),
    ("افتتاح مكتبة جديدة", "افتتحت البلدية مكتبة عامة جديدة في وسط المدينة يوم الأحد."),
    ("Новая библиотека", "Библиотека открылась в воскресенье — вход свободный."),
])
def test_unicode_round_trips_exactly(tmp_path, title, body):
    for ext, content in ((".txt", f"{title}\n\n{body}\n"),
                         (".jsonl", '{"title": "%s", "body": "%s"}\n' % (title, body))):
        f = tmp_path / f"a{ext}"
        f.write_text(content, encoding="utf-8")
        a = load_one(f)
        assert (a.title, a.body) == (title, body)


# ---------------------------------------------------------------- files, folders, limits


def test_oversize_file_skipped_without_reading(tmp_path, monkeypatch):
    f = tmp_path / "big.txt"
    f.write_text("Title\n\n" + "x" * 5000, encoding="utf-8")
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("oversize file was read"))
    result = load_paths([f], max_bytes=1000)
    assert result.articles == []
    [fail] = result.failures
    assert fail.reason.startswith("file is ") and "MB, over the limit of" in fail.reason
    assert fail.reason.endswith("(ingest.max_file_mb)")


def test_oversize_message_in_megabytes(tmp_path):
    f = tmp_path / "big.txt"
    with open(f, "wb") as fh:
        fh.truncate(3 * 1024 * 1024)  # sparse, not written
    [(path, fail)] = list(iter_files([f], max_bytes=2 * 1024 * 1024))
    assert fail.reason == "file is 3.0 MB, over the limit of 2.0 MB (ingest.max_file_mb)"


def test_nonexistent_path():
    result = load_paths(["/no/such/place/article.txt"])
    assert result.failures == [LoadFailure("/no/such/place/article.txt", "no such file or directory")]


def test_explicit_unsupported_file_fails_but_folder_ignores_it(tmp_path):
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "a.txt").write_text("Title\n\nBody.", encoding="utf-8")
    [(_, fail)] = list(iter_files([tmp_path / "notes.docx"], max_bytes=10**6))
    assert "unsupported file type" in fail.reason
    result = load_paths([tmp_path])
    assert [a.title for a in result.articles] == ["Title"] and result.failures == []


def test_folder_walk_sorted_recursive_with_symlink_loop(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.md").write_text("Two\n\nSecond.", encoding="utf-8")
    (tmp_path / "a.txt").write_text("One\n\nFirst.", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"title": "Three", "body": "Third."}\n', encoding="utf-8")
    os.symlink(tmp_path, tmp_path / "loop")
    os.symlink(tmp_path / "b", tmp_path / "b" / "self")
    seen: list[Path] = []
    result = load_paths([tmp_path], progress=seen.append)
    assert [a.title for a in result.articles] == ["One", "Two", "Three"]
    assert seen == [tmp_path / "a.txt", tmp_path / "b" / "two.md", tmp_path / "c.jsonl"]
    assert result.failures == [] and result.skipped == []


def test_broken_symlink_is_failure(tmp_path):
    os.symlink(tmp_path / "gone.txt", tmp_path / "dangling.txt")
    os.symlink(tmp_path / "self.md", tmp_path / "self.md")  # a file symlink pointing at itself
    result = load_paths([tmp_path])
    assert [f.reason for f in result.failures] == ["broken symlink", "symlink loop (the link points back to itself)"]
    assert load_paths([tmp_path / "dangling.txt"]).failures[0].reason == "broken symlink"


def test_duplicate_article_kept_once(tmp_path):
    text = "---\ntitle: Same story\nsource: Wire\n---\nIdentical body.\n"
    (tmp_path / "first.txt").write_text(text, encoding="utf-8")
    (tmp_path / "second.txt").write_text(text, encoding="utf-8")
    result = load_paths([tmp_path])
    assert [a.origin for a in result.articles] == [str(tmp_path / "first.txt")]
    assert result.skipped == [LoadFailure(str(tmp_path / "second.txt"), f"duplicate of {tmp_path / 'first.txt'}")]


def test_progress_called_for_failed_files_too(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    seen: list[Path] = []
    result = load_paths([tmp_path, tmp_path / "missing.md"], progress=seen.append)
    assert seen == [tmp_path / "empty.txt", tmp_path / "missing.md"]
    assert [f.reason for f in result.failures] == ["empty file", "no such file or directory"]


def test_whole_fixture_folder_loads():
    result = load_paths([DATA])
    assert len(result.articles) == 12
    assert all(a.body.strip() for a in result.articles)
    assert len(result.failures) == 4  # list.json item 3, truncated tail, 2 bad jsonl lines
