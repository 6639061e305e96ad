"""A small OpenAI-compatible upstream for tests: chat completions (streamed or not, text and
tool calls), embeddings, scripted failures and latency, and a record of every request."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fake_upstream.embeddings import embed, to_base64
from tests.fake_upstream.replies import Reply


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: dict | None
    at: float


def _words(text: str, per_chunk: int) -> list[str]:
    pieces = text.split(" ")
    chunks = []
    for start in range(0, len(pieces), per_chunk):
        chunk = " ".join(pieces[start:start + per_chunk])
        chunks.append(chunk if start == 0 else " " + chunk)
    return chunks or [""]


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


class FakeUpstream:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._failures: deque[Reply] = deque()
        self._responder: Callable[[dict], Reply | None] | None = None
        self.requests: list[RecordedRequest] = []
        self.instant = False
        # Seconds each embeddings request takes (a slow embedding model).
        self.embedding_delay = 0.0
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def set_responder(self, responder: Callable[[dict], Reply | None] | None) -> None:
        with self._lock:
            self._responder = responder

    def fail_next(self, count: int, status: int = 500, retry_after: float | None = None) -> None:
        with self._lock:
            self._failures.extend(Reply(status=status, retry_after=retry_after) for _ in range(count))

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._failures.clear()
            self._responder = None
            self.embedding_delay = 0.0
            self.requests.clear()

    def chat_requests(self) -> list[dict]:
        with self._lock:
            return [r.json for r in self.requests if r.path.endswith("/chat/completions")]

    def rerank_requests(self) -> list[dict]:
        with self._lock:
            return [r.json for r in self.requests if r.path.endswith("/rerank")]

    def last_chat_request(self) -> dict:
        requests = self.chat_requests()
        assert requests, "the upstream received no chat completion request"
        return requests[-1]

    def embedding_for(self, text: str, dimensions: int = 256) -> list[float]:
        return embed(text, dimensions)

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            if self._failures:
                return self._failures.popleft()
            if self._queue:
                return self._queue.popleft()
            responder = self._responder
        if responder is not None:
            reply = responder(body)
            if reply is not None:
                return reply
        return Reply(text=f"You said: {_last_user_text(body)}")

    def _record(self, handler: BaseHTTPRequestHandler, body: dict | None) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, handler.path,
                                                 dict(handler.headers.items()), body, time.time()))

    # -- HTTP -----------------------------------------------------------------------------
    def _handler_class(self):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                upstream._record(self, None)
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [
                        {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                        for name in ("gpt-4o", "gpt-4o-mini", "text-embedding-3-large")]})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error",
                                               "param": None, "code": None}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                upstream._record(self, body)
                if self.path.endswith("/embeddings"):
                    self._embeddings(body)
                elif self.path.endswith("/chat/completions"):
                    self._chat(body, upstream._next_reply(body))
                elif self.path.endswith("/rerank"):
                    self._rerank(body)
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error",
                                               "param": None, "code": None}})

            def _embeddings(self, body: dict) -> None:
                if upstream.embedding_delay and not upstream.instant:
                    time.sleep(upstream.embedding_delay)
                inputs = body.get("input")
                inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
                dimensions = int(body.get("dimensions") or 256)
                as_base64 = body.get("encoding_format") == "base64"
                data = []
                for index, text in enumerate(inputs):
                    vector = embed(str(text), dimensions)
                    data.append({"object": "embedding", "index": index,
                                 "embedding": to_base64(vector) if as_base64 else vector})
                tokens = sum(len(str(text).split()) for text in inputs)
                self._json(200, {"object": "list", "data": data,
                                 "model": body.get("model", "text-embedding-3-large"),
                                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

            def _rerank(self, body: dict) -> None:
                """Cohere/Jina shape; relevance = the share of the query's words the document
                holds (deterministic, and different from the hybrid score)."""
                query = set(re.findall(r"[a-z0-9]+", str(body.get("query", "")).lower()))
                results = []
                for index, document in enumerate(body.get("documents") or []):
                    words = set(re.findall(r"[a-z0-9]+", str(document).lower()))
                    score = len(query & words) / len(query) if query else 0.0
                    results.append({"index": index, "relevance_score": round(score, 6)})
                results.sort(key=lambda r: -r["relevance_score"])
                self._json(200, {"id": "rerank-fake", "model": body.get("model"),
                                 "results": results[: int(body.get("top_n") or len(results))]})

            def _fail(self, reply: Reply) -> None:
                headers = {}
                if reply.retry_after is not None:
                    headers["retry-after"] = str(reply.retry_after)
                code = {429: "rate_limit_exceeded", 400: "invalid_request"}.get(reply.status)
                self._json(reply.status, {"error": {
                    "message": f"fake upstream failure {reply.status}",
                    "type": "invalid_request_error" if reply.status < 500 else "server_error",
                    "param": None, "code": code}}, headers)

            def _chat(self, body: dict, reply: Reply) -> None:
                if reply.status != 200:
                    self._fail(reply)
                    return
                if reply.hang:
                    time.sleep(600)
                    return
                if reply.first_token_delay and not upstream.instant:
                    time.sleep(reply.first_token_delay)
                prompt_tokens = reply.prompt_tokens
                if prompt_tokens is None:
                    prompt_tokens = sum(len(json.dumps(m.get("content") or "").split())
                                        for m in body.get("messages") or []) + 1
                chunks = _words(reply.text, reply.chunk_words) if reply.text else []
                if reply.text and reply.chunk_chars:
                    chunks = [reply.text[start:start + reply.chunk_chars]
                              for start in range(0, len(reply.text), reply.chunk_chars)]
                completion_tokens = reply.completion_tokens
                if completion_tokens is None:
                    completion_tokens = max(1, len(chunks) + sum(
                        len(call[1]) // 4 + 1 for call in reply.tool_calls))
                calls = [
                    {"id": call[2] if len(call) > 2 else "call_" + uuid.uuid4().hex[:24],
                     "name": call[0], "arguments": call[1]}
                    for call in reply.tool_calls
                ]
                finish = reply.finish_reason or ("tool_calls" if calls else "stop")
                usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
                if body.get("stream"):
                    self._stream(body, reply, chunks, calls, finish, usage)
                else:
                    message: dict = {"role": "assistant", "content": reply.text}
                    if calls:
                        message["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                            "name": c["name"], "arguments": c["arguments"]}} for c in calls]
                    self._json(200, {"id": "chatcmpl-fake", "object": "chat.completion",
                                     "created": int(time.time()), "model": body.get("model"),
                                     "choices": [{"index": 0, "message": message,
                                                  "finish_reason": finish}],
                                     "usage": usage})

            def _stream(self, body, reply, chunks, calls, finish, usage) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                        "created": int(time.time()), "model": body.get("model")}
                frames: list[dict] = [{"role": "assistant", "content": ""}]
                frames += [{"content": chunk} for chunk in chunks]
                for index, call in enumerate(calls):
                    frames.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                                   "function": {"name": call["name"], "arguments": ""}}]})
                    arguments = call["arguments"]
                    for start in range(0, len(arguments), 4):
                        frames.append({"tool_calls": [{"index": index, "function": {
                            "arguments": arguments[start:start + 4]}}]})
                try:
                    for sent, delta in enumerate(frames):
                        if reply.disconnect_after_chunks is not None and sent >= reply.disconnect_after_chunks:
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                        if reply.per_chunk_delay and not upstream.instant:
                            time.sleep(reply.per_chunk_delay)
                    self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
                    if (body.get("stream_options") or {}).get("include_usage"):
                        self._event({**base, "choices": [], "usage": usage})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _event(self, payload: dict) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        return Handler
