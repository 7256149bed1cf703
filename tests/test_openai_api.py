"""The archive as an OpenAI-compatible model, asked by the official `openai` client and LangChain's ChatOpenAI
against a served app on 127.0.0.1."""

from __future__ import annotations

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from assistant.config import load_settings
from assistant.web.api import create_app
from tests.support.net import serve_in_thread

QUESTION = "Did Russia offer Iran military help?"
UNCOVERED = "What did the Pope say about the Brazilian election?"
MODEL = "newsroom-articles"
TOKEN = "wgt-test-3f9c2e7a"
WIKI = "https://wiki.newsroom.example"
SEED_TITLE = "Russia snubs Iran as Kremlin refuses military help: “BRICS is not a mutual defense pact”"


def _settings(data_dir, **server):
    return load_settings(data_dir=str(data_dir), **{"server.widget_tokens": {TOKEN: [WIKI]},
                                                    **{f"server.{k}": v for k, v in server.items()}})


@pytest.fixture(scope="module")
def served(corpus_data_dir):
    from assistant.answering.chain import Assistant

    settings = _settings(corpus_data_dir)
    with serve_in_thread(create_app(settings, Assistant(settings))) as url:
        yield url


def client(url: str, token: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=60)


def test_models_lists_the_archive(served):
    assert [m.id for m in client(served).models.list()] == [MODEL]
    assert client(served).models.retrieve(MODEL).id == MODEL


def test_plain_completion_carries_markers_footer_and_citations(served):
    r = client(served).chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "You are a pirate."},  # ignored: the archive's rules apply
        {"role": "user", "content": QUESTION}])
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == MODEL and choice.finish_reason == "stop"
    text = choice.message.content
    answer, footer = text.split("\n\nSources:\n")
    assert "[1]" in answer
    assert footer.splitlines()[0] == f"[1] “{SEED_TITLE}”"  # no outlet, date or URL stated: none shown
    extra = choice.message.model_extra
    assert extra["refused"] is False and extra["citations"]
    c = extra["citations"][0]
    assert set(c) == {"n", "article_id", "title", "source", "published_at", "url", "quote", "start", "end", "speaker"}
    assert c["quote"] in answer and c["end"] - c["start"] == len(c["quote"])
    assert choice.message.refusal is None


def test_streamed_completion_ends_with_citations_and_done(served):
    chunks = list(client(served).chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": QUESTION}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop" and last.delta.model_extra["citations"]
    assert "[1]" in text and "\n\nSources:\n[1] “Russia snubs Iran" in text
    assert len([c for c in chunks if c.choices[0].delta.content]) > 2  # really streamed, in pieces
    raw = httpx.post(f"{served}/v1/chat/completions", json={"model": MODEL, "stream": True, "messages": [
        {"role": "user", "content": QUESTION}]}, timeout=60).text
    assert raw.rstrip().endswith("data: [DONE]")


def test_refusal_is_marked(served):
    r = client(served).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": UNCOVERED}])
    choice = r.choices[0]
    assert choice.finish_reason == "refusal"
    assert choice.message.model_extra["refused"] is True and choice.message.model_extra["citations"] == []
    assert choice.message.refusal == choice.message.content
    assert choice.message.content.startswith("The articles I have do not cover this question")
    streamed = list(client(served).chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": UNCOVERED}]))
    assert streamed[-1].choices[0].finish_reason == "refusal"
    assert streamed[-1].choices[0].delta.model_extra["refused"] is True


def test_messages_become_question_and_history(served):
    first = client(served).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    r = client(served).chat.completions.create(model=MODEL, messages=[
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},  # with its footer: taken off
        {"role": "user", "content": [{"type": "text", "text": "And China?"}]}])
    message = r.choices[0].message
    assert not message.model_extra["refused"] and "Wang Yi" in message.content


def test_chat_openai_plain_and_streamed(served):
    llm = ChatOpenAI(base_url=f"{served}/v1", api_key=TOKEN, model=MODEL, max_retries=0, timeout=60)
    reply = llm.invoke(QUESTION)
    assert "[1]" in reply.content and "Sources:" in reply.content
    assert reply.response_metadata["finish_reason"] == "stop"
    pieces = [c.content for c in llm.stream(QUESTION)]
    assert len([p for p in pieces if p]) > 2 and "".join(pieces).startswith(reply.content.split(" [")[0][:40])
    refused = llm.invoke(UNCOVERED)
    assert refused.response_metadata["finish_reason"] == "refusal"
    assert refused.additional_kwargs["refusal"].startswith("The articles I have do not cover")


def test_bad_token_unknown_model_and_foreign_origin(served):
    with pytest.raises(openai.AuthenticationError) as e:
        client(served, "wgt-wrong").chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 401 and e.value.body["message"] == "unknown token"
    with pytest.raises(openai.NotFoundError) as e:
        client(served).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert e.value.code == "model_not_found" and MODEL in e.value.body["hint"]
    foreign = httpx.post(f"{served}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}",
                                                                   "Origin": "https://evil.example"},
                         json={"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]})
    assert foreign.status_code == 403 and "not allowed" in foreign.json()["error"]["message"]
    allowed = httpx.get(f"{served}/v1/models", headers={"Authorization": f"Bearer {TOKEN}", "Origin": WIKI})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == WIKI
    # a widget token still cannot use admin routes through /v1's door
    assert httpx.get(f"{served}/api/sources", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403
    bad = httpx.post(f"{served}/v1/chat/completions", json={"model": MODEL, "messages": [
        {"role": "assistant", "content": "hello"}]})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_rate_limit_is_the_api_one(corpus_assistant):
    settings = _settings(corpus_assistant.settings.data_dir, rate_limit_per_minute=2)
    with serve_in_thread(create_app(settings, corpus_assistant)) as url:
        c = client(url)
        for _ in range(2):
            c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
        with pytest.raises(openai.RateLimitError) as e:
            c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
        assert e.value.status_code == 429 and int(e.value.response.headers["Retry-After"]) > 0
        # the same budget as /api/ask: that route is spent too
        assert httpx.post(f"{url}/api/ask", json={"question": QUESTION},
                          headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429
