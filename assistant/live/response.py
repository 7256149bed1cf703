"""One response of a fetch (`Page`: status, body, headers, redirects) and its body as text: the declared
charset (Content-Type, else the XML declaration or <meta charset>) when it decodes cleanly, else the file
loaders' detection."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from assistant.errors import CorpusError
from assistant.ingest.decoding import decode_text
from assistant.live.errors import FetchError

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")


@dataclass
class Page:
    """One response: 200 with its body, or 304 (not modified, empty body)."""

    url: str  # as requested
    final_url: str  # after redirects
    status: int
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    redirects: list[str] = field(default_factory=list)  # each URL a redirect led to, in order

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body as text: the declared charset when it decodes cleanly, else the file loaders' detection
        (UTF-8, then cp1251/cp1252), so a wrong or missing charset still reads."""
        raw = self.content
        for enc in (_declared_charset(self.headers.get("content-type", "")), _sniffed_charset(raw)):
            if enc:
                try:
                    return raw.decode(enc).replace("\r\n", "\n").replace("\x00", "")
                except (UnicodeDecodeError, LookupError):
                    continue
        try:
            return decode_text(raw)
        except CorpusError as e:
            raise FetchError(self.final_url, e.message) from None


def _declared_charset(content_type: str) -> str | None:
    m = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", content_type, re.IGNORECASE)
    return _codec(m.group(1)) if m else None


def _sniffed_charset(raw: bytes) -> str | None:
    m = _XML_ENCODING.match(raw[:200]) or _META_CHARSET.search(raw[:4096])
    return _codec(m.group(1).decode("ascii", "replace")) if m else None


def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None
