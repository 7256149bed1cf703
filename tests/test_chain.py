"""The one chain: its library interface, streaming, callbacks, and every surface asking through it."""

from __future__ import annotations

import asyncio
import json
import re
from contextvars import ContextVar
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from langchain_core.retrievers import BaseRetriever
from langchain_core.tracers.context import register_configure_hook

from assistant import load_chain, load_retriever
from assistant.answering.chain import EMPTY_STORE, RUN_NAME, Assistant
from assistant.answering.retrieval import Filters
from assistant.cli import cli
from assistant.errors import AssistantError
from assistant.web.api import create_app
from tests.support.answers import sse_events
from tests.support.callbacks import Recorder
from tests.support.net import serve_forever_in_thread, serve_in_thread
from tests.support.paths import SEED
from tests.support.scripted_llm import Fault

QUESTION = "Did Russia offer Iran military help?"
ASK_JSON = {"answer", "refused", "citations"}
CITATION_FIELDS = {"n", "article_id", "title", "source", "published_at", "url", "quote", "start", "end", "speaker"}


# A configure hook whose variable holds a recorder by default: every LangChain run in this process, in any
# thread (uvicorn's, Gradio's workers), reports to it. A surface that bypasses the chain reports nothing.
SPY = Recorder()
SPY.on = False
register_configure_hook(ContextVar("assistant_test_spy", default=SPY), inheritable=True)


@pytest.fixture
def spy():
    SPY.runs.clear()
    SPY.outputs.clear()
    SPY.tokens.clear()
    SPY.on = True
    yield SPY
    SPY.on = False


def asked_through_the_chain(recorder: Recorder, times: int = 1) -> None:
    roots = recorder.roots()
    assert len(roots) == times, recorder.runs
    for root in roots:
        assert recorder.under(root, "chain")[:4] == ["prepare", "condense", "retrieve", "answer"] or \
            {"prepare", "condense", "retrieve", "answer", "cite"} <= set(recorder.under(root, "chain"))
        assert recorder.under(root, "retriever") == ["NewsRetriever"]


def test_load_retriever_is_a_langchain_retriever_with_exact_offsets(corpus_data_dir):
    retriever = load_retriever(data_dir=corpus_data_dir)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke(QUESTION)
    assert docs and len(docs) <= 6
    body = SEED.read_text(encoding="utf-8").split("\n", 1)[1]
    for d in docs:
        m = d.metadata
        assert {"chunk_id", "article_id", "title", "source", "published_at", "url", "start", "end", "score",
                "confidence"} <= set(m)
        if m["title"].startswith("Russia snubs Iran"):  # the seed: its body holds the chunk at its offsets
            assert m["end"] - m["start"] == len(d.page_content)
            assert d.page_content.strip() in body
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    # filters narrow it: no article of an outlet that does not exist
    assert load_retriever(data_dir=corpus_data_dir, filters={"sources": ["No Such Outlet"]}).invoke(QUESTION) == []


def test_load_chain_gives_the_ask_json_fields(corpus_data_dir):
    chain = load_chain(data_dir=corpus_data_dir)
    out = chain.invoke({"question": QUESTION})
    assert ASK_JSON <= set(out) and {"support", "unsupported", "notice", "result"} <= set(out)
    assert not out["refused"] and out["citations"] and set(out["citations"][0]) == CITATION_FIELDS
    cli_json = CliRunner().invoke(cli, ["--data-dir", str(corpus_data_dir), "ask", "--json", QUESTION])
    assert cli_json.exit_code == 0
    assert {k: out[k] for k in ASK_JSON} == json.loads(cli_json.stdout)
    assert out["result"].to_json() == json.loads(cli_json.stdout)


def test_stream_and_astream_give_text_then_the_answer(corpus_assistant):
    chunks = list(corpus_assistant.chain.stream({"question": QUESTION}))
    assert len(chunks) >= 2 and all(set(c) == {"delta"} for c in chunks[:-1])
    final = chunks[-1]
    assert final["answer"] and final["result"].answer == final["answer"]
    unmarked = lambda text: " ".join(re.sub(r"\[\d+\]", "", text).split())  # noqa: E731 - numbers may change
    assert unmarked("".join(c["delta"] for c in chunks[:-1])) == unmarked(final["answer"])

    async def collect():
        return [c async for c in corpus_assistant.chain.astream({"question": QUESTION})]

    achunks = asyncio.run(collect())
    assert [c.get("delta") for c in achunks] == [c.get("delta") for c in chunks]
    assert achunks[-1]["answer"] == final["answer"]


def test_callbacks_see_the_retriever_and_the_model_for_one_question(chat_assistant, llm):
    assistant = chat_assistant()
    llm.enqueue("Did China offer Iran military help?",
                "Moscow will not intervene militarily on Iran's behalf [1].")
    recorder = Recorder()
    history = [(f"Earlier question {i} about Norrheim herring?", f"Earlier answer {i}.") for i in range(9)]
    history.append((QUESTION, "No, Moscow will not intervene [1]."))
    answer = assistant.ask("And China?", history, config={"callbacks": [recorder], "tags": ["t"]})
    assert answer.answer

    [root] = recorder.roots()
    assert recorder.under(root, "retriever") == ["NewsRetriever"]
    assert len(recorder.under(root, "chat_model")) == 2  # condense, then the answer: both inside the run
    assert {"prepare", "condense", "retrieve", "answer", "cite"} <= set(recorder.under(root, "chain"))
    assert "".join(recorder.tokens).startswith("Did China offer")  # the model's tokens, streamed
    assert len(recorder.outputs["prepare"][0]["history"]) == 6  # the history cap: the last 6 turns


def test_astream_events_carry_retriever_and_model_events(chat_assistant, llm):
    assistant = chat_assistant()
    llm.enqueue("Moscow will not intervene militarily on Iran's behalf [1].")

    async def collect():
        return [ev async for ev in assistant.chain.astream_events({"question": QUESTION}, version="v2")]

    events = asyncio.run(collect())
    kinds = {ev["event"] for ev in events}
    assert {"on_retriever_start", "on_retriever_end", "on_chat_model_start", "on_chat_model_stream",
            "on_chat_model_end"} <= kinds
    text = "".join(ev["data"]["chunk"].content for ev in events if ev["event"] == "on_chat_model_stream")
    assert text == "Moscow will not intervene militarily on Iran's behalf [1]."
    end = [ev for ev in events if ev["event"] == "on_chain_end" and ev["name"] == RUN_NAME]
    assert end and end[0]["data"]["output"]["citations"]


def test_astream_events_see_the_condense_call_of_a_follow_up(chat_assistant, llm):
    assistant = chat_assistant()
    llm.enqueue("Did China offer Iran military help?", "Moscow will not intervene militarily on Iran's behalf [1].")
    history = [(QUESTION, "No, Moscow will not intervene [1].")]

    async def collect():
        return [ev async for ev in assistant.chain.astream_events({"question": "And China?", "history": history},
                                                                  version="v2")]

    events = asyncio.run(collect())
    starts = [ev for ev in events if ev["event"] == "on_chat_model_start"]
    assert len(starts) == 2 and len(llm.history) == 2  # the condense call, then the answer, both traced
    condense = next(ev for ev in events if ev["event"] == "on_chain_end" and ev["name"] == "condense")
    assert condense["data"]["output"]["standalone"] == "Did China offer Iran military help?"


def test_failed_condense_falls_back_without_asking_the_dead_server_again(chat_assistant, llm):
    assistant = chat_assistant()
    llm.enqueue(Fault(status=500))
    events = list(assistant.stream("And China?", [(QUESTION, "No, Moscow will not intervene [1].")]))
    assert len(llm.history) == 1  # the condense request only: the answer comes from the extractive engine
    notices = [e.text for e in events if e.kind == "notice"]
    assert len(notices) == 1 and "returned HTTP 500" in notices[0]
    answer = events[-1].answer
    assert answer is not None and "returned HTTP 500" in answer.notice and answer.citations


def test_question_check_and_empty_store_hold_for_the_chain(make_settings):
    chain = Assistant(make_settings()).chain
    with pytest.raises(AssistantError, match="the question is empty"):
        chain.invoke({"question": " \x00 "})
    with pytest.raises(AssistantError, match="invalid date from"):
        chain.invoke({"question": QUESTION, "filters": {"date_from": "2025-13-01"}})
    out = chain.invoke({"question": QUESTION})
    assert out["answer"] == EMPTY_STORE and out["refused"] and out["notice"] == "empty store"


def test_every_surface_asks_through_the_chain(corpus_assistant, corpus_data_dir, spy):
    """CLI, REST (the widget's route included), the OpenAI-compatible route and the Gradio chat: each question is
    one run of the chain with its retriever. A surface with a path of its own fails here."""
    result = CliRunner().invoke(cli, ["--data-dir", str(corpus_data_dir), "ask", QUESTION])
    assert result.exit_code == 0 and "Sources:" in result.stdout
    asked_through_the_chain(spy)
    spy.runs.clear()
    result = CliRunner().invoke(cli, ["--data-dir", str(corpus_data_dir), "ask", "--json", QUESTION])
    assert result.exit_code == 0
    asked_through_the_chain(spy)

    app = create_app(corpus_assistant.settings, corpus_assistant)
    with serve_in_thread(app) as url:
        surfaces = {
            "/api/ask": lambda: httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=60).json()["answer"],
            "/api/ask/stream": lambda: sse_events(httpx.post(f"{url}/api/ask/stream", json={"question": QUESTION},
                                                             timeout=60).text)[-2][1]["answer"],
            "/v1/chat/completions": lambda: httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
                "model": "newsroom-articles", "messages": [{"role": "user", "content": QUESTION}]}).json()[
                "choices"][0]["message"]["content"],
            "/v1/chat/completions stream": lambda: httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
                "model": "newsroom-articles", "stream": True,
                "messages": [{"role": "user", "content": QUESTION}]}).text,
        }
        for name, ask in surfaces.items():
            spy.runs.clear()
            assert "[1]" in ask(), name
            asked_through_the_chain(spy)

        from gradio_client import Client

        client = Client(f"{url}/", verbose=False)
        spy.runs.clear()
        answer, _ = client.predict(QUESTION, api_name="/ask")
        assert "[1]" in answer
        asked_through_the_chain(spy)
        spy.runs.clear()
        chat, _, _ = client.predict(QUESTION, [], api_name="/chat")
        assert "[1]" in str(chat[-1]["content"])
        asked_through_the_chain(spy)


@pytest.fixture
def slow_llm():
    """An OpenAI-compatible server streaming a long reply slowly; records whether the client hung up."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"sent": 0, "hung_up": threading.Event(), "finished": threading.Event()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for i in range(400):  # 400 chunks, 20 ms apart: 8 s if nobody stops it
                    piece = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": f"Moscow waits {i}. "},
                                          "finish_reason": None}]}
                    self.wfile.write(b"data: " + json.dumps(piece).encode() + b"\n\n")
                    self.wfile.flush()
                    state["sent"] += 1
                    threading.Event().wait(0.02)
                self.wfile.write(b"data: [DONE]\n\n")
                state["finished"].set()
            except (BrokenPipeError, ConnectionResetError):
                state["hung_up"].set()
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    serve_forever_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("route", ["/api/ask/stream", "/v1/chat/completions"])
def test_a_client_that_disconnects_stops_the_model_call(corpus_assistant, corpus_data_dir, slow_llm, route):
    from assistant.config import load_settings

    base_url, state = slow_llm
    settings = load_settings(data_dir=str(corpus_data_dir), **{"answer.engine": "openai", "llm.base_url": base_url,
                                                               "llm.max_retries": 0, "llm.timeout": 30.0})
    assistant = Assistant(settings, archive=corpus_assistant.archive)
    body = {"question": QUESTION} if route == "/api/ask/stream" else {
        "model": "newsroom-articles", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with serve_in_thread(create_app(settings, assistant)) as url:
        with httpx.stream("POST", url + route, json=body, timeout=30) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if "Moscow waits" in line:
                    break  # the first words of the model: hang up
        assert state["hung_up"].wait(5), "the model server kept streaming to nobody"
    assert not state["finished"].is_set() and state["sent"] < 300


OUTLETS = [("Avrel Harbour Gazette", "Ferry crews in Port Avrel", "The first boat left at dawn with forty cyclists."),
           ("Vell Courier", "Ferry crews in Vell", "Fishmongers on the quay cheered as the horn sounded."),
           ("The Gazette of Durnholt", "Ferry crews in Durnholt", "The mayor thanked the librarians who had "
                                                                  "kept the waiting room open all week.")]


@pytest.fixture(scope="module")
def three_outlets(tmp_path_factory):
    """Three fictional ferry stories from three outlets, two of them named "Gazette"."""
    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    folder = tmp_path_factory.mktemp("outlets")
    records = [{"title": f"{lead} end their strike", "source": source, "published_at": f"2025-06-0{i + 1}",
                "url": f"https://outlet-{i}.example/ferry",
                "body": f"{lead} ended their strike on Tuesday after the harbour board agreed to new rotas. {extra}"}
               for i, (source, lead, extra) in enumerate(OUTLETS)]
    (folder / "stories.json").write_text(json.dumps(records), encoding="utf-8")
    settings = load_settings(data_dir=str(folder / "data"))
    assert Ingestor(settings).ingest_paths([folder / "stories.json"]).added == 3
    return Assistant(settings)


def test_source_filter_means_the_same_in_the_dense_and_keyword_legs(three_outlets):
    from assistant.answering.retrieval import _where

    r = three_outlets.retriever
    resolved = r.matching_sources(["gazette"])  # any outlet whose name holds the value, ignoring case
    assert resolved == ["Avrel Harbour Gazette", "The Gazette of Durnholt"]
    question = "When did the ferry strike end?"
    qvec = three_outlets.store.embedder.embed([question])[0]
    dense = {p.chunk_id for p in three_outlets.store.dense_search(qvec, 50, _where(None, None, resolved))}
    keyword = {cid for cid, _ in r.lexical.search(question, 50, r.lexical.mask(None, None, resolved))}
    assert dense == keyword and len(dense) == 2  # the same two articles' chunks in both legs
    passages = r.retrieve(question, Filters(sources=["GAZETTE"])).passages
    assert {p.source for p in passages} == set(resolved)
    # a value naming no outlet matches nothing, in both legs (it does not lift the filter)
    assert r.matching_sources(["Harbour Times"]) == ["Harbour Times"]
    assert r.retrieve(question, Filters(sources=["Harbour Times"])).passages == []


def test_an_outlet_ingested_while_serving_is_recognised_in_the_next_question(tmp_path):
    """The outlets a question may name follow the archive: a server's first question must not freeze them."""
    from assistant.config import load_settings
    from assistant.ingest.ingestor import Ingestor

    def story(source: str, n: int, body: str) -> dict:
        return {"title": f"Quarry road news {n}", "source": source, "published_at": "2025-06-02",
                "url": f"https://quarry-{n}.example/road", "body": body}

    first = story("Tessivane Lantern", 1, "The quarry road in Tessivane reopened on Monday after three weeks of "
                  "repairs, the district council said.")
    second = story("Orrow Valley Post", 2, "Lorries were back on the resurfaced quarry road by Monday morning, "
                   "and the bakery at the crossroads reported its first busy week since April.")
    (tmp_path / "first.json").write_text(json.dumps([first]), encoding="utf-8")
    (tmp_path / "second.json").write_text(json.dumps([second]), encoding="utf-8")
    settings = load_settings(data_dir=str(tmp_path / "data"))
    assistant = Assistant(settings)
    assert Ingestor(settings, archive=assistant.archive).ingest_paths([tmp_path / "first.json"]).added == 1
    question = "According to Orrow Valley Post, when did the quarry road reopen?"
    assert assistant.retriever.known_sources() == ["Tessivane Lantern"]
    assistant.retriever.retrieve(question)  # the first question, before the second outlet exists
    assert Ingestor(settings, archive=assistant.archive).ingest_paths([tmp_path / "second.json"]).added == 1
    assert assistant.retriever.known_sources() == ["Orrow Valley Post", "Tessivane Lantern"]
    top = assistant.retriever.retrieve(question).passages[0]
    assert top.source == "Orrow Valley Post"  # the named outlet's story is boosted to the top


def test_iso_week_dates_parse_and_impossible_dates_are_refused(three_outlets, tmp_path):
    r = three_outlets.retriever
    question = "When did the ferry strike end?"
    week = r.retrieve(question, Filters(date_from="2025-W23-2"))  # the Tuesday of week 23: 2025-06-03
    assert Filters(date_from="2025-W23-2").date_from == "2025-06-03"
    assert [p.chunk_id for p in week.passages] == \
        [p.chunk_id for p in r.retrieve(question, Filters(date_from="2025-06-03")).passages]
    assert {p.published_at for p in week.passages} == {"2025-06-03"}
    for bad in ("2025-W54", "2025-W23-8", "June", "2025-02-30"):
        with pytest.raises(AssistantError, match="give dates as YYYY-MM-DD"):
            Filters(date_from=bad)
    data_dir = str(three_outlets.settings.data_dir)
    ok = CliRunner().invoke(cli, ["--data-dir", data_dir, "ask", "--json", "--since", "2025-W23", question])
    assert ok.exit_code == 0, ok.output
    assert {c["published_at"] for c in json.loads(ok.stdout)["citations"]} <= {"2025-06-02", "2025-06-03"}
    refused = CliRunner().invoke(cli, ["--data-dir", data_dir, "ask", "--since", "2025-W54", question])
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.output


@pytest.mark.subprocess
def test_the_library_leaves_the_environment_and_torch_threads_alone(tmp_path):
    """Loading and running the embedders (torch and onnx) changes neither os.environ nor torch's threads."""
    import subprocess
    import sys

    script = """
import os, torch
import onnxruntime, sentence_transformers, transformers  # their own import-time settings (KMP_*) are theirs
torch.set_num_threads(3)
before = dict(os.environ)
from assistant import load_assistant
for backend in ("torch", "onnx-int8"):
    a = load_assistant(data_dir=DATA + backend, embedding={"backend": backend, "threads": 1})
    assert a.store.embedder.embed(["ferry strike"]).shape[0] == 1
ours = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "HF_HUB_DISABLE_PROGRESS_BARS")
changed = {k for k, _ in set(os.environ.items()) ^ set(before.items())}
assert not changed & set(ours) and changed <= {"TORCHINDUCTOR_CACHE_DIR"}, changed  # torch's lazy cache dir
assert torch.get_num_threads() == 3, torch.get_num_threads()
print("ok")
""".replace("DATA", repr(str(tmp_path / "data")))
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
