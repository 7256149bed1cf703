"""The archive as an OpenAI-compatible model: `GET /v1/models` and `POST /v1/chat/completions`.

Any chat client that speaks the OpenAI protocol can ask the archive: the messages become the question (the
last user message) and the conversation (earlier user/assistant pairs; system messages are ignored, the
archive's own rules apply). The reply is the chain's answer, with its [n] markers and a short "Sources"
footer for plain clients. Extensions, documented in README: each choice's `message` (the last `delta` when
streaming) carries `citations` (the `ask --json` fields), `refused` and `notice`; a refusal also has
`finish_reason: "refusal"` and the refusal text in `message.refusal`, OpenAI's field for it. Tokens, origins,
rate and size limits are the /api ones (web/security.py); errors come in OpenAI's `{"error": {...}}` shape.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.answering.chain import Assistant, check_question, events_of
from assistant.answering.citations import article_label
from assistant.errors import AssistantError
from assistant.models import Answer
from assistant.web.actor import actor_of
from assistant.web.errors import described, openai_error_body

log = logging.getLogger(__name__)

PREFIX = "/v1"
OWNER = "newsroom-assistant"
_FOOTER = "\n\nSources:\n"
_NOTE = "\n\n⚠️ "


def model_id(assistant: Assistant) -> str:
    """The archive's model name: one per collection ("newsroom-articles" for the default collection)."""
    return f"newsroom-{assistant.settings.store.collection}"


class ChatMessage(BaseModel):
    """One message; `content` is text or OpenAI's list of parts (text parts are read, others ignored)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """An OpenAI chat completion request; sampling options (temperature, max_tokens...) are accepted and
    ignored: the answer is the archive's."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "newsroom-articles", "messages": [{"role": "user", "content": "Did Russia offer Iran military help?"}]}]})
    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


def conversation(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The last user message as the question, earlier user/assistant pairs as the history (our own footer and
    notes taken off the answers)."""
    talk = [m for m in messages if m.role in ("user", "assistant")]
    if not talk or talk[-1].role != "user":
        raise AssistantError("the last message must be the user's question", 'end "messages" with a user message')
    turns, pending = [], None
    for m in talk[:-1]:
        if m.role == "user":
            pending = m.text()
        elif pending is not None:
            turns.append((pending, m.text().split(_FOOTER)[0].split(_NOTE)[0].strip()))
            pending = None
    return talk[-1].text(), turns


def footer(answer: Answer) -> str:
    """The short "Sources" list under a reply: [n] “Title” (outlet, date) and the link, one line each."""
    if not answer.citations:
        return ""
    lines = [f"[{c.n}] {article_label(c)}" + (f" {c.url}" if c.url else "") for c in answer.citations]
    return _FOOTER + "\n".join(lines)


def extension(answer: Answer) -> dict[str, Any]:
    """The fields a choice's message carries beside OpenAI's: citations, refused, notice (and refusal)."""
    fields = {"citations": answer.to_json()["citations"], "refused": answer.refused, "notice": answer.notice}
    if answer.refused:
        fields["refusal"] = answer.answer
    return fields


def _finish(answer: Answer) -> str:
    return "refusal" if answer.refused else "stop"


def _note(answer: Answer, shown: list[str]) -> str:
    """The answer's notice for plain clients, less what was already streamed (the empty store says itself)."""
    notice = answer.notice or ""
    if notice == "empty store":
        return ""
    for text in shown:
        notice = notice.replace(text, "")
    notice = notice.strip("; ")
    return _NOTE + notice if notice else ""


def openai_router(assistant: Assistant) -> APIRouter:
    """The /v1 routes over the assistant's chain."""
    router = APIRouter(prefix=PREFIX, tags=["openai"])

    def check_model(name: str) -> None:
        if name != model_id(assistant):
            raise OpenAIError(404, f"the model {name!r} does not exist", "model_not_found",
                              f"use {model_id(assistant)!r} (GET /v1/models)")

    @router.get("/models")
    def models() -> dict:
        """The archive as a model (OpenAI's list format)."""
        return {"object": "list", "data": [{"id": model_id(assistant), "object": "model", "created": 0,
                                             "owned_by": OWNER}]}

    @router.get("/models/{name}")
    def model(name: str) -> dict:
        check_model(name)
        return {"id": name, "object": "model", "created": 0, "owned_by": OWNER}

    @router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
    async def chat_completions(req: ChatRequest, request: Request):
        """Answer the conversation's last question from the archive, plain or streamed (SSE, `[DONE]` last)."""
        check_model(req.model)
        question, history = conversation(req.messages)
        asked = check_question(question)
        inputs = {"question": asked, "history": history}
        await run_in_threadpool(assistant.archive.audit.question, actor_of(request), PREFIX + "/chat/completions", asked)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": cid, "created": created, "model": req.model}
        if not req.stream:
            out = await assistant.chain.ainvoke(inputs)
            answer: Answer = out["result"]
            message = {"role": "assistant", "content": answer.answer + _note(answer, []) + footer(answer),
                       **extension(answer)}
            return {**head, "object": "chat.completion", "choices": [
                {"index": 0, "message": message, "finish_reason": _finish(answer), "logprobs": None}]}
        chunks = assistant.chain.astream(inputs)
        # The first chunk comes after retrieval: pulling it here turns store errors into a proper status.
        first = await anext(chunks, None)
        return StreamingResponse(_sse(head, first, chunks), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def not_found(rest: str) -> JSONResponse:
        raise OpenAIError(404, f"no route /v1/{rest}", "not_found", "the routes are GET /v1/models and "
                          "POST /v1/chat/completions")

    return router


async def _sse(head: dict[str, Any], first: dict | None, chunks: AsyncIterator[dict]) -> AsyncIterator[str]:
    """OpenAI chunks: the role, the text as it comes, the final form's corrections and footer with the
    extension fields and finish_reason, then `[DONE]`. A notice (model server down) is a line of the text."""

    def data(delta: dict[str, Any], finish: str | None = None) -> str:
        chunk = {**head, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield data({"role": "assistant", "content": ""})
    streamed, shown, chunk = "", [], first
    try:
        while chunk is not None:
            for ev in events_of(chunk):
                if ev.kind == "notice":
                    shown.append(ev.text)
                    yield data({"content": ("\n\n" if streamed else "") + f"⚠️ {ev.text}\n\n"})
                    streamed = ""  # the answer starts again after the notice
                elif ev.kind == "delta":
                    streamed += ev.text
                    yield data({"content": ev.text})
                elif ev.answer is not None:
                    answer = ev.answer
                    # Renumbered citations, or a reply the checks turned into a refusal: the final form too.
                    tail = "" if streamed.strip() == answer.answer.strip() else "\n\n" + answer.answer
                    yield data({"content": tail + _note(answer, shown) + footer(answer), **extension(answer)},
                               _finish(answer))
            chunk = await anext(chunks, None)
    except AssistantError as e:
        log.warning("chat completion stream failed: %s", e)
        yield f"data: {json.dumps(openai_error_body(500, *described(e)))}\n\n"
    except Exception as e:
        log.exception("chat completion stream crashed")
        yield f"data: {json.dumps(openai_error_body(500, *described(e)))}\n\n"
    yield "data: [DONE]\n\n"


class OpenAIError(AssistantError):
    """An error of the /v1 routes with its HTTP status and OpenAI error code."""

    def __init__(self, status: int, message: str, code: str, hint: str | None = None):
        super().__init__(message, hint)
        self.status, self.code = status, code


class OpenAIErrors:
    """ASGI middleware: on /v1/* an error answer (ours `{"error", "hint"}`, from a route or the access
    policy) is sent in OpenAI's `{"error": {"message", "type", "param", "code", "hint"}}` shape, which
    OpenAI clients show."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def reshape(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                if message["status"] >= 400 and headers.get("content-type", "").startswith("application/json"):
                    start = message  # held until the body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body += message.get("body", b"")
                if message.get("more_body"):
                    return
                try:
                    ours = json.loads(body)
                except ValueError:
                    ours = None
                if isinstance(ours, dict) and isinstance(ours.get("error"), str):
                    body = json.dumps(openai_error_body(start["status"], ours["error"], ours.get("hint"),
                                                  ours.get("code"))).encode()
                out = MutableHeaders(scope=start)
                out["content-length"] = str(len(body))
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, reshape)
