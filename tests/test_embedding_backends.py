"""The ONNX embedder backends give the torch model's vectors (fp32) or close ones (int8), under the right name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.config import EmbeddingSettings
from assistant.errors import ConfigError, StoreError
from assistant.index.embedder import Embedder
from assistant.index.store import Store
from tests.support.paths import SEED

LONG = SEED.read_text(encoding="utf-8")  # the real seed article, verbatim
TEXTS = [
    "Did Russia offer Iran military help?",
    "hello",
    "Ceasefire",
    "Vellmark calls for a ceasefire on the north shore as talks stall in Durnholt.",
    "Le président a annoncé de nouvelles mesures économiques mardi soir.",
    "Der Inselrat von Vellmark bestreitet, Rettungsboote an Durnholt verkauft zu haben.",
    "Прекращение огня вступило в силу в полночь.",
    "Shares fell 3.2% to $41.07 on Tuesday, the lowest since 2019 (Vellmark Exchange: VMK).",
    "BREAKING:\n\nofficials    said   the   storm\twould make landfall by 5 p.m. ET",
    LONG,  # a whole article: far beyond 256 word pieces, truncated
    ("The minister said the talks would continue. " * 80).strip(),  # long and repetitive
    LONG[len(LONG) // 2:],
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def torch_embedder():
    return Embedder.shared(EmbeddingSettings(backend="torch"))


@pytest.fixture(scope="module")
def onnx_embedder(onnx_cache):
    return Embedder(EmbeddingSettings(backend="onnx"), onnx_cache)


@pytest.fixture(scope="module")
def int8_embedder(onnx_cache):
    return Embedder(EmbeddingSettings(backend="onnx-int8"), onnx_cache)


def test_long_texts_are_really_truncated(onnx_embedder):
    n = len(onnx_embedder.tokenizer(LONG)["input_ids"])
    assert n > 2 * onnx_embedder.max_seq_length == 512


def test_onnx_fp32_matches_torch(torch_embedder, onnx_embedder):
    ref = torch_embedder.embed(TEXTS)
    got = onnx_embedder.embed(TEXTS)
    assert got.shape == ref.shape == (len(TEXTS), 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (ref * got).sum(axis=1)
    assert cos.min() >= 0.999, cos


def test_onnx_int8_is_close_to_torch(torch_embedder, int8_embedder):
    ref = torch_embedder.embed(TEXTS)
    got = int8_embedder.embed(TEXTS)
    cos = (ref * got).sum(axis=1)
    assert cos.min() >= 0.98, cos
    assert cos.min() < 0.99999  # really quantized: not the fp32 model under another name


def test_mixed_length_batch_equals_one_by_one(onnx_embedder, int8_embedder):
    together = onnx_embedder.embed(TEXTS, batch_size=5)
    alone = np.vstack([onnx_embedder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    # int8 quantizes activations with one dynamic range per batch tensor, so a text's vector depends a
    # little on its batch neighbours: close, not equal (a query embedded alone still finds its chunk).
    together = int8_embedder.embed(TEXTS, batch_size=5)
    alone = np.vstack([int8_embedder.embed([t]) for t in TEXTS])
    assert (together * alone).sum(axis=1).min() >= 0.97


def test_recorded_model_name_rule(torch_embedder, onnx_embedder, int8_embedder):
    assert onnx_embedder.name == torch_embedder.name
    assert int8_embedder.name == torch_embedder.name + "+int8"


def test_int8_store_refuses_fp32_queries(make_settings, torch_embedder, int8_embedder, onnx_embedder):
    settings = make_settings(**{"embedding.backend": "onnx-int8"})
    Store(settings, embedder=int8_embedder).collection()
    with pytest.raises(StoreError, match=r"\+int8"):
        Store(settings, embedder=torch_embedder).collection()
    with pytest.raises(StoreError):
        Store(settings, embedder=onnx_embedder).collection()
    assert Store(settings, embedder=int8_embedder).count() == 0  # the int8 embedder itself is accepted


def test_export_is_cached_and_reused(onnx_cache, onnx_embedder, int8_embedder):
    from assistant.index.embedding_onnx import OnnxEncoder

    for emb in (onnx_embedder, int8_embedder):
        path = emb.onnx.onnx_path
        assert path.is_relative_to(onnx_cache) and path.is_file()
        before = path.stat()
        again = OnnxEncoder(emb.path, emb.backend, path.parent.parent)
        assert again.onnx_path == path
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".build-")]
    assert onnx_embedder.onnx.onnx_path != int8_embedder.onnx.onnx_path


def test_int8_is_quantized_from_the_cached_fp32_export(onnx_embedder, int8_embedder, tmp_path, monkeypatch):
    """With the fp32 export cached, an int8 build only quantizes it: no second torch export, the same model file."""
    import shutil

    from assistant.index import embedding_onnx

    fp32 = onnx_embedder.onnx.onnx_path
    shutil.copytree(fp32.parent, tmp_path / fp32.parent.name)

    def no_export(*_):
        raise AssertionError("exported again")

    monkeypatch.setattr(embedding_onnx, "export_onnx", no_export)
    int8 = embedding_onnx.build(Path(onnx_embedder.path), "onnx-int8", tmp_path)
    assert int8.parent.name == int8_embedder.onnx.onnx_path.parent.name != fp32.parent.name
    assert int8.read_bytes() == int8_embedder.onnx.onnx_path.read_bytes()
    assert int8.stat().st_size < fp32.stat().st_size / 2  # really int8 weights


def test_unknown_backend_is_a_config_error():
    from assistant.config import load_settings

    with pytest.raises(ConfigError, match="'torch', 'onnx' or 'onnx-int8'"):
        load_settings(**{"embedding.backend": "tensorrt"})


def test_concurrent_embeds_match_sequential(onnx_embedder):
    from concurrent.futures import ThreadPoolExecutor

    alone = [onnx_embedder.embed([t]) for t in TEXTS]
    with ThreadPoolExecutor(4) as pool:  # the web server embeds questions from several threads at once
        together = list(pool.map(lambda t: onnx_embedder.embed([t]), TEXTS))
    np.testing.assert_allclose(np.vstack(together), np.vstack(alone), atol=1e-5)


@pytest.mark.subprocess
def test_a_cached_onnx_model_embeds_and_chunks_without_transformers_or_torch(onnx_embedder, onnx_cache):
    """Once exported, the ONNX model and its tokenizer file are all a process needs: no transformers, no torch
    (2 s and ~250 MB each), and the same vectors and chunk boundaries as through the transformers tokenizer."""
    import json
    import subprocess
    import sys

    from assistant.ingest.chunking import Chunker
    from assistant.models import Article
    from tests.support.paths import ROOT

    ref = onnx_embedder.embed(TEXTS)  # exports the model and writes its tokenizer file
    seed = Article(title="Seed", body=LONG)
    script = """if True:
        import json, sys
        from assistant.config import EmbeddingSettings
        from assistant.index.embedder import Embedder
        from assistant.ingest.chunking import Chunker
        from assistant.models import Article
        texts, body, cache = json.loads(sys.stdin.read())
        e = Embedder(EmbeddingSettings(backend="onnx"), cache)
        vectors = e.embed(texts).tolist()
        chunks = Chunker(e.word_pieces, e.max_seq_length, 254, 32).split(Article(title="Seed", body=body))
        print(json.dumps({"vectors": vectors, "chunks": [[c.start, c.end] for c in chunks],
                          "loaded": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
    """
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps([TEXTS, LONG, str(onnx_cache)]),
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["loaded"] == []
    assert np.array_equal(np.array(got["vectors"], dtype=np.float32), ref)
    through_transformers = Chunker(onnx_embedder.tokenizer, onnx_embedder.max_seq_length, 254, 32).split(seed)
    assert got["chunks"] == [[c.start, c.end] for c in through_transformers] and len(got["chunks"]) > 1
