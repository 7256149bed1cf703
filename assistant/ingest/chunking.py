"""Articles into sentence-aware chunks sized by the embedder's own tokenizer, with exact offsets."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from assistant.models import Article, Chunk
from assistant.text.sentences import split_sentences

# Sentence-boundary separator for LangChain's splitter (whitespace after sentence punctuation).
_SENT_SEP = r"(?<=[.!?…\"”’])\s+"


class Chunker:
    """Splits article bodies into chunks no longer than the embedder accepts.

    Args:
        tokenizer: the embedder's tokenizer (counts word pieces): a `tokenizers.Tokenizer` or a Hugging Face one.
        max_seq_length: the embedder's limit, special tokens included.
        chunk_tokens: target size of title + chunk text, in word pieces.
        overlap_tokens: overlap between neighbouring chunks.
    """

    TITLE_BUDGET = 48

    def __init__(self, tokenizer, max_seq_length: int, chunk_tokens: int = 160, overlap_tokens: int = 24):
        self.tokenizer = tokenizer
        self.limit = max_seq_length - 2  # [CLS] and [SEP]
        self.chunk_tokens = min(chunk_tokens, self.limit)
        self.overlap_tokens = overlap_tokens
        self._encode = _raw_encoder(tokenizer)
        self._counts: dict[str, int] = {}

    def count(self, text: str) -> int:
        """Word pieces in text (no special tokens), as the embedder's tokenizer counts them."""
        n = self._counts.get(text)
        if n is None:
            # The splitter asks for the same piece several times (split test, then merge); memoized per split().
            n = self._counts[text] = self._encode(text)
        return n

    def embed_title(self, title: str) -> str:
        """The title as prepended to every chunk for embedding, cut to the title budget."""
        title = " ".join(title.split())
        while title and self.count(title) > self.TITLE_BUDGET:
            title = title.rsplit(" ", 1)[0] if " " in title else title[: len(title) // 2]
        return title

    def embedding_text(self, title: str, chunk_text: str) -> str:
        return f"{title}\n{chunk_text}" if title else chunk_text

    def split(self, article: Article, regions: Iterable[tuple[int, int]] | None = None) -> list[Chunk]:
        """Chunks of article.body; `regions` limits chunking to kept spans (page furniture removed)."""
        self._counts.clear()
        body = article.body
        title = self.embed_title(article.title)
        size = max(16, self.chunk_tokens - (self.count(title) + 1 if title else 0))
        splitter = _splitter(self.count, size, min(self.overlap_tokens, size // 4))
        chunks: list[Chunk] = []
        for rs, re_ in regions if regions is not None else [(0, len(body))]:
            region = body[rs:re_]
            cursor, prev = 0, -1
            for piece in splitter.split_text(region):
                # The piece starts after the previous piece's start and at most at the end of the previous piece
                # plus the whitespace the splitter stripped: the latest such occurrence is it. (In repetitive text,
                # "0000...", an earlier occurrence of the same characters is not this piece.)
                gap = len(region[cursor:]) - len(region[cursor:].lstrip())
                pos = region.rfind(piece, prev + 1, cursor + gap + len(piece))
                if pos < 0:  # cannot happen with strip_whitespace splitting; be safe
                    pos = region.find(piece, max(0, cursor - len(piece)))
                if pos < 0:
                    pos = region.find(piece)
                start, end = rs + pos, rs + pos + len(piece)
                cursor, prev = pos + len(piece), pos
                chunks.append(Chunk(article.id, len(chunks), piece, start, end,
                                    split_sentences(body, start, end)))
        return chunks


def _raw_encoder(tokenizer) -> Callable[[str], int]:
    """A word-piece counter; for a fast tokenizer, its Rust tokenizer called directly.

    transformers' `tokenize` adds a Python layer per call (the splitter calls it thousands of times per
    article); a private copy of the Rust tokenizer skips it and cannot inherit the truncation that an
    embedding call leaves set on the shared one.
    """
    from tokenizers import Tokenizer

    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: len(tokenizer.tokenize(text))

    raw = Tokenizer.from_str(backend.to_str())
    raw.no_truncation()
    raw.no_padding()
    return lambda text: len(raw.encode(text, add_special_tokens=False).ids)


def _splitter(count: Callable[[str], int], size: int, overlap: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=overlap,
        length_function=count,
        separators=["\n\n", "\n", _SENT_SEP, r"[;:]\s+", r",\s+", r"\s+", ""],
        is_separator_regex=True,
        keep_separator="end",
        strip_whitespace=True,
    )
