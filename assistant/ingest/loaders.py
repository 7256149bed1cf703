"""Read article files (.txt .md .html .json .jsonl .pdf) into `Article`s, reporting bad input instead of raising."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import CorpusError
from assistant.ingest.decoding import clean, decode_text, normalize_date, str_field
from assistant.models import Article

log = logging.getLogger(__name__)

MB = 1024 * 1024
TEXT_EXTS = {".txt", ".md", ".markdown"}
SUPPORTED_EXTS = TEXT_EXTS | {".html", ".htm", ".json", ".jsonl", ".pdf"}
FRONT_MATTER_KEYS = {"title": "title", "source": "source", "author": "author",
                     "published_at": "published_at", "date": "published_at", "url": "url"}
BODY_KEYS = ("body", "content", "text")
DATE_KEYS = ("published_at", "date", "published")
_JSON_WS = re.compile(r"[ \t\n\r]*")


@dataclass
class LoadFailure:
    """A file, line or item that could not be turned into an article, and why."""

    path: str
    reason: str
    line: int | None = None


@dataclass
class LoadResult:
    """Everything one `load_paths` run produced."""

    articles: list[Article] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)
    skipped: list[LoadFailure] = field(default_factory=list)


# ---------------------------------------------------------------- files


def iter_files(paths: Iterable[str | Path], max_bytes: int) -> Iterator[tuple[Path, LoadFailure | None]]:
    """Yield each loadable file under `paths` (folders recursively, sorted), or the reason it can't be loaded."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    seen: set[str] = set()
    for given in map(Path, paths):
        if given.is_dir():
            candidates = _walk(given)
        elif given.is_symlink() and not given.exists():
            yield given, LoadFailure(str(given), _symlink_reason(given))
            continue
        elif not given.exists():
            yield given, LoadFailure(str(given), "no such file or directory")
            continue
        elif given.suffix.lower() not in SUPPORTED_EXTS:
            yield given, LoadFailure(str(given), f"unsupported file type '{given.suffix or '(none)'}'")
            continue
        else:
            candidates = [(given, None)]
        for path, failure in candidates:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            yield path, failure or _check_file(path, max_bytes)


def _walk(top: Path) -> list[tuple[Path, LoadFailure | None]]:
    """Supported files under `top` sorted by path; symlinked folders are followed once, so loops end."""
    found: list[tuple[Path, LoadFailure | None]] = []
    visited: set[str] = set()

    def unreadable(e: OSError) -> None:
        found.append((Path(e.filename), LoadFailure(str(e.filename), f"cannot read folder: {e.strerror or e}")))

    for root, dirs, files in os.walk(top, followlinks=True, onerror=unreadable):
        real_root = os.path.realpath(root)
        if real_root in visited:
            dirs[:] = []
            continue
        visited.add(real_root)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [(Path(root) / name, None) for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_EXTS]
    return sorted(found, key=lambda item: item[0].parts)


def _symlink_reason(path: Path) -> str:
    """Why a symlink does not lead to a file: a loop, or a missing target."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop (the link points back to itself)"
    return "broken symlink"


def _check_file(path: Path, max_bytes: int) -> LoadFailure | None:
    if path.is_symlink() and not path.exists():
        return LoadFailure(str(path), _symlink_reason(path))
    try:
        st = path.stat()
    except OSError as e:
        return LoadFailure(str(path), f"cannot read file: {e.strerror or e}")
    if not stat.S_ISREG(st.st_mode):
        return LoadFailure(str(path), "not a regular file")
    if st.st_size > max_bytes:  # decided from stat alone: the file is never opened
        return LoadFailure(str(path), f"file is {_mb(st.st_size)} MB, over the limit of "
                                      f"{_mb(max_bytes)} MB (ingest.max_file_mb)")
    return None


def _mb(n: int) -> str:
    v = n / MB
    return f"{v:.1f}" if v >= 0.1 or v == 0 else f"{v:.4f}"


def load_paths(paths: Iterable[str | Path], max_bytes: int = 50 * MB,
               progress: Callable[[Path], None] | None = None) -> LoadResult:
    """Load every file under `paths`; later copies of an article id are reported in `skipped`."""
    result = LoadResult()
    first_origin: dict[str, str | None] = {}
    for path, failure in iter_files(paths, max_bytes):
        articles, failures = ([], [failure]) if failure else load_file(path)
        for f in failures:
            log.warning("cannot load %s%s: %s", f.path, f" line {f.line}" if f.line else "", f.reason)
        result.failures.extend(failures)
        for a in articles:
            if a.id in first_origin:
                result.skipped.append(LoadFailure(a.origin or str(path), f"duplicate of {first_origin[a.id]}"))
            else:
                first_origin[a.id] = a.origin
                result.articles.append(a)
        if progress:
            progress(path)
    log.info("loaded %d articles, %d failures, %d skipped",
             len(result.articles), len(result.failures), len(result.skipped))
    return result


def load_file(path: Path) -> tuple[list[Article], list[LoadFailure]]:
    """Read one file into articles; bad content becomes failures, good records are kept."""
    path = Path(path)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        return [], [LoadFailure(str(path), f"unsupported file type '{path.suffix or '(none)'}'")]
    try:
        raw = path.read_bytes()
        return loader(path, raw)
    except CorpusError as e:
        return [], [LoadFailure(str(path), e.message)]
    except OSError as e:
        return [], [LoadFailure(str(path), f"cannot read file: {e.strerror or e}")]
    except RecursionError:
        return [], [LoadFailure(str(path), "data nested too deeply to parse")]
    except Exception as e:  # a parser bug must not stop a whole ingest run
        log.exception("unexpected error reading %s", path)
        return [], [LoadFailure(str(path), f"unexpected error: {type(e).__name__}: {e}")]


# ---------------------------------------------------------------- per-format loaders


def _load_text(path: Path, raw: bytes) -> tuple[list[Article], list[LoadFailure]]:
    text = decode_text(raw)
    lines = text.split("\n")
    meta: dict[str, str] = {}
    if lines[0].strip() == "---":
        try:
            end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
        except StopIteration:
            return [], [LoadFailure(str(path), "front matter starts with '---' but is never closed", 1)]
        for line in lines[1:end]:
            key, sep, value = line.partition(":")
            key = key.strip().lower()
            if sep and key in FRONT_MATTER_KEYS:
                meta[FRONT_MATTER_KEYS[key]] = value.strip().strip("\"'")
        lines = lines[end + 1:]
    if "title" not in meta or not meta["title"]:
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None:
            return [], [LoadFailure(str(path), "no body text")]
        meta["title"] = lines[first].strip().lstrip("#").strip()
        lines = lines[first + 1:]
    else:
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is not None and lines[first].strip().lstrip("#").strip() == meta["title"]:
            lines = lines[first + 1:]  # the headline repeated as the body's first line
    body = re.sub(r"^(?:[ \t]*\n)+", "", "\n".join(lines)).rstrip()
    if not body.strip():
        return [], [LoadFailure(str(path), "no body text")]
    return [Article(title=meta["title"], body=body, source=meta.get("source") or None,
                    author=meta.get("author") or None, url=meta.get("url") or None,
                    published_at=normalize_date(meta.get("published_at"), str(path)),
                    origin=str(path))], []


def _load_html(path: Path, raw: bytes) -> tuple[list[Article], list[LoadFailure]]:
    article = html_article(decode_text(raw), str(path))
    if isinstance(article, str):
        return [], [LoadFailure(str(path), article)]
    return [article], []


def html_article(html: str, origin: str, url: str | None = None, plain_fallback: bool = True) -> Article | str:
    """Main text and metadata of an HTML page (trafilatura), or the reason there is no article in it.

    Args:
        url: the page's address, when fetched; trafilatura's `url` (canonical link or og:url) wins over it.
        plain_fallback: use the page's visible text when trafilatura finds no main text (files do; fetched
            pages do not, so an index page or a paywall is reported instead of stored).
    """
    import trafilatura  # slow to import; only needed for HTML

    try:
        doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                          include_tables=False, favor_precision=True)
    except Exception as e:  # trafilatura raises ValueError and others on odd input
        log.warning("%s: trafilatura failed (%s), using plain text extraction", origin, e)
        doc = None
    meta = (doc if isinstance(doc, dict) else doc.as_dict()) if doc is not None else {}
    title = clean(meta.get("title") or "").strip()
    body = clean(meta.get("text") or "").strip()
    if not body and plain_fallback:
        body = _html_plain_text(html)
    if not body:
        return "no article text found in HTML"
    first, _, rest = body.partition("\n")
    if title and first.strip() == title and rest.strip():
        body = rest.strip()  # trafilatura repeats the <h1> headline as the first line
    if not title:
        title = first.strip()
    return Article(title=title, body=body, source=meta.get("sitename") or None,
                   author=meta.get("author") or None, url=meta.get("url") or None,
                   published_at=normalize_date(meta.get("date"), origin), origin=origin)


def _html_plain_text(html: str) -> str:
    """Visible text of <body> without scripts/styles, one block per line; '' if unparsable."""
    import lxml.html

    try:
        parser = lxml.html.HTMLParser(encoding="utf-8")  # already decoded: ignore any <meta charset>
        root = lxml.html.document_fromstring(html.encode("utf-8"), parser=parser)
    except Exception:
        return ""
    for el in root.xpath("//script|//style|//noscript|//template|//head"):
        el.drop_tree()
    for el in root.iter("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                        "section", "article", "blockquote", "pre", "header", "footer"):
        el.tail = "\n" + (el.tail or "")
    body = root.find("body")
    text = (body if body is not None else root).text_content()
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


def _load_json(path: Path, raw: bytes) -> tuple[list[Article], list[LoadFailure]]:
    text = decode_text(raw)
    stripped = text.lstrip()
    if stripped.startswith("["):
        items, broken = _scan_array(text, len(text) - len(stripped) + 1)
        articles, failures = _articles_from_items(items, str(path))
        if broken:
            failures.append(LoadFailure(str(path), broken[0], broken[1]))
        return articles, failures
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return [], [LoadFailure(str(path), f"invalid JSON: {e.msg} (column {e.colno})", e.lineno)]
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        return _articles_from_items([(o, None) for o in data["articles"]], str(path))
    if not isinstance(data, dict):
        return [], [LoadFailure(str(path), "JSON must be an object, a list of objects, or {\"articles\": [...]}")]
    article = _record_to_article(data, str(path))
    if isinstance(article, str):
        return [], [LoadFailure(str(path), article)]
    return [article], []


def _scan_array(text: str, pos: int) -> tuple[list[tuple[Any, int]], tuple[str, int] | None]:
    """Decode a JSON list's items one by one from `pos` (just after '['), keeping those before any break.

    Returns [(item, line)] and, if the list is broken, (reason, line where the broken part starts).
    """
    decoder = json.JSONDecoder()
    items: list[tuple[Any, int]] = []

    def line_at(i: int) -> int:
        return text.count("\n", 0, i) + 1

    def skip_ws(i: int) -> int:
        m = _JSON_WS.match(text, i)
        assert m is not None  # the pattern matches the empty string, so at any position
        return m.end()

    while True:
        pos = skip_ws(pos)
        if pos < len(text) and text[pos] == "]":
            if text[pos + 1:].strip():
                return items, ("invalid JSON: extra data after the list", line_at(skip_ws(pos + 1)))
            return items, None
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            k = len(items) + 1
            return items, (f"invalid JSON: {e.msg.removesuffix(' at')} (line {e.lineno}, column {e.colno}); "
                           f"item {k} and after not loaded", line_at(pos))
        items.append((obj, line_at(pos)))
        pos = skip_ws(end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            what = "file ends before the list is closed" if pos >= len(text) else "expected ',' or ']'"
            return items, (f"invalid JSON: {what}", line_at(pos))


def _load_jsonl(path: Path, raw: bytes) -> tuple[list[Article], list[LoadFailure]]:
    articles: list[Article] = []
    failures: list[LoadFailure] = []
    for n, line in enumerate(decode_text(raw).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            failures.append(LoadFailure(str(path), f"invalid JSON: {e.msg} (column {e.colno})", n))
            continue
        article = _record_to_article(record, f"{path}#line {n}")
        if isinstance(article, str):
            failures.append(LoadFailure(str(path), article, n))
        else:
            articles.append(article)
    return articles, failures


def _load_pdf(path: Path, raw: bytes) -> tuple[list[Article], list[LoadFailure]]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError, WrongPasswordError

    def fail(reason: str) -> tuple[list[Article], list[LoadFailure]]:
        return [], [LoadFailure(str(path), reason)]

    if b"%PDF-" not in raw[:1024]:
        return fail("not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            return fail("PDF is encrypted with a password; save an unencrypted copy")
        text = clean("\n\n".join((page.extract_text() or "").strip() for page in reader.pages)).strip()
        meta_title = reader.metadata.title if reader.metadata else None
    except (FileNotDecryptedError, WrongPasswordError) as e:
        return fail(f"PDF is encrypted and cannot be read: {e}")
    except DependencyError as e:  # e.g. AES-encrypted PDF without the `cryptography` package
        return fail(f"PDF cannot be decrypted: {e}")
    except PyPdfError as e:
        return fail(f"corrupt or unreadable PDF: {e}")
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:  # pypdf on broken structure
        return fail(f"corrupt or unreadable PDF: {type(e).__name__}: {e}")
    if not text:
        return fail("PDF has no text layer (scanned?); run OCR first")
    title = clean(str(meta_title or "")).strip() or next(ln.strip() for ln in text.split("\n") if ln.strip())
    return [Article(title=title, body=text, origin=str(path))], []


_LOADERS: dict[str, Callable[[Path, bytes], tuple[list[Article], list[LoadFailure]]]] = {
    **{ext: _load_text for ext in TEXT_EXTS},
    ".html": _load_html, ".htm": _load_html, ".json": _load_json, ".jsonl": _load_jsonl, ".pdf": _load_pdf,
}


# ---------------------------------------------------------------- records (JSON, REST API)


def articles_from_records(records: list[dict], origin: str) -> tuple[list[Article], list[LoadFailure]]:
    """Map JSON-like objects to articles; failures name the 1-based item ("item K: missing body")."""
    return _articles_from_items([(r, None) for r in records], origin)


def _articles_from_items(items: Sequence[tuple[Any, int | None]],
                         origin: str) -> tuple[list[Article], list[LoadFailure]]:
    articles: list[Article] = []
    failures: list[LoadFailure] = []
    for k, (record, line) in enumerate(items, start=1):
        article = _record_to_article(record, f"{origin}#item {k}")
        if isinstance(article, str):
            failures.append(LoadFailure(origin, f"item {k}: {article}", line))
        else:
            articles.append(article)
    return articles, failures


def _record_to_article(record: Any, origin: str) -> Article | str:
    """An Article from one object, or the reason it is not one."""
    if not isinstance(record, dict):
        return f"not a JSON object ({type(record).__name__})"
    try:
        title = str_field(record, "title")
        body = next((b for b in (str_field(record, k) for k in BODY_KEYS) if b), None)
        date = next((str_field(record, k) for k in DATE_KEYS if record.get(k) not in (None, "")), None)
        source, author, url = (str_field(record, k) for k in ("source", "author", "url"))
    except ValueError as e:
        return str(e)
    if not title:
        return "missing title"
    if not body:
        return "missing body"
    return Article(title=title, body=body, published_at=normalize_date(date, origin), origin=origin,
                   source=source, author=author, url=url)
