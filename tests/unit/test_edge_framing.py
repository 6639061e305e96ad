"""The web edge's own framing checks, called as the ASGI app in front of Django. uvicorn already
answers most malformed Content-Length headers with a plain-text 400; other ASGI servers pass
them through, and then the edge answers in OpenAI's envelope without reading the body."""

from __future__ import annotations

import asyncio
import json

import pytest


def _call(headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, int]:
    from assistants_project.asgi import application

    sent: list[dict] = []
    reads = 0

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/threads", "raw_path": b"/v1/threads", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"127.0.0.1"), *headers],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(application(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)["error"], reads


@pytest.mark.parametrize("headers", [
    [(b"content-length", b"abc")],
    [(b"content-length", b"-5")],
    [(b"content-length", b"99999999999999999999999")],
    [(b"content-length", b"5"), (b"content-length", b"6")],
    [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
])
def test_malformed_framing_is_a_400_before_the_body_is_read(headers):
    status, error, reads = _call(headers)
    assert status == 400
    assert error["param"] == "Content-Length" and error["type"] == "invalid_request_error"
    assert reads == 0
