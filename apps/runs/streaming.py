"""Relays a run's Redis stream to the client as Server-Sent Events, in order, from a given
position, with keep-alive comments while nothing happens."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import cache

import redis.asyncio as aioredis
from django.conf import settings
from django.http import StreamingHttpResponse

from apps.runs.events import DONE, stream_key

READ_BATCH = 200


@cache
def _async_redis() -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.REDIS_URL)


def _error_frames(message: str) -> bytes:
    error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return (f"event: error\ndata: {json.dumps(error)}\n\n" "event: done\ndata: [DONE]\n\n").encode()


async def relay(run_id: str, start_id: str = "0-0") -> AsyncIterator[bytes]:
    client = _async_redis()
    key = stream_key(run_id)
    position = start_id
    # A run cannot outlive its expiry; past that (plus slack) something is badly wrong.
    deadline = time.monotonic() + settings.RUN_EXPIRY_SECONDS + 120
    while True:
        if time.monotonic() > deadline:
            yield _error_frames("The run's event stream ended unexpectedly.")
            return
        reply = await client.xread({key: position}, block=int(settings.SSE_KEEPALIVE_SECONDS * 1000),
                                   count=READ_BATCH)
        if not reply:
            yield b": keep-alive\n\n"
            continue
        chunks = []
        finished = False
        for entry_id, fields in reply[0][1]:
            position = entry_id
            event = fields[b"event"].decode()
            chunks.append(b"event: " + fields[b"event"] + b"\ndata: " + fields[b"data"] + b"\n\n")
            if event == DONE:
                finished = True
                break
        yield b"".join(chunks)
        if finished:
            return


def sse_response(run_id: str, start_id: str = "0-0") -> StreamingHttpResponse:
    response = StreamingHttpResponse(relay(run_id, start_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
