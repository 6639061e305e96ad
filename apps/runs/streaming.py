"""Relays a run's Redis stream to the client as Server-Sent Events, in order, from a given
position, with keep-alive comments while nothing happens.

However long a run is quiet (a slow first token, upstream retries, a long code execution), the
stream stays open. Redis trouble is ridden out: a dropped connection or a timeout is retried,
reading again after the last event delivered, so nothing is lost or repeated. Only an outage
longer than OUTAGE_SECONDS ends the stream, and then with `error` and `done`, never silence."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.core.redis_client import block_ms, get_async_redis
from apps.runs.events import DONE, stream_key

logger = logging.getLogger(__name__)

READ_BATCH = 200
KEEP_ALIVE = b": keep-alive\n\n"
# Long enough to outlast a Redis restart or failover, short enough that a client is told soon.
OUTAGE_SECONDS = 10.0
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)

OUTAGE_MESSAGE = ("The run's event stream is unavailable. The run goes on: retrieve it to "
                  "follow its progress.")
UNEXPECTED_MESSAGE = "The run's event stream ended unexpectedly."


def _error_frames(message: str) -> bytes:
    error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return (f"event: error\ndata: {json.dumps(error)}\n\n" "event: done\ndata: [DONE]\n\n").encode()


def _frames(entries: list) -> tuple[bytes, str | None, bool]:
    """The SSE frames for a batch of stream entries, the last entry ID relayed, and whether the
    batch held `done` (nothing after it is relayed)."""
    chunks = []
    position = None
    for entry_id, fields in entries:
        position = entry_id
        chunks.append(b"event: " + fields[b"event"] + b"\ndata: " + fields[b"data"] + b"\n\n")
        if fields[b"event"].decode() == DONE:
            return b"".join(chunks), position, True
    return b"".join(chunks), position, False


async def relay(run_id: str, start_id: str = "0-0") -> AsyncIterator[bytes]:
    try:
        async for chunk in _relay(run_id, start_id):
            yield chunk
    except Exception:
        # The response started long ago: an error event is the only way left to say so.
        logger.exception("SSE relay of run %s failed", run_id)
        yield _error_frames(UNEXPECTED_MESSAGE)


async def _relay(run_id: str, start_id: str) -> AsyncIterator[bytes]:
    key = stream_key(run_id)
    position = start_id
    keepalive = settings.SSE_KEEPALIVE_SECONDS
    # A run cannot outlive its expiry; past that (plus slack) something is badly wrong.
    deadline = time.monotonic() + settings.RUN_EXPIRY_SECONDS + 120
    next_keepalive = time.monotonic() + keepalive
    failures = 0
    failing_since: float | None = None
    while True:
        now = time.monotonic()
        if now > deadline:
            yield _error_frames(UNEXPECTED_MESSAGE)
            return
        if now >= next_keepalive:
            yield KEEP_ALIVE
            next_keepalive = now + keepalive
        try:
            # Blocks of at most the client's limit: the socket must outlast every block.
            reply = await get_async_redis().xread({key: position}, count=READ_BATCH,
                                                  block=block_ms(next_keepalive - now))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            failing_since = failing_since or now
            if time.monotonic() - failing_since >= OUTAGE_SECONDS:
                logger.warning("SSE relay of run %s gave up after %.0f s of Redis errors: %s",
                               run_id, OUTAGE_SECONDS, exc)
                yield _error_frames(OUTAGE_MESSAGE)
                return
            await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
            failures += 1
            continue
        failures, failing_since = 0, None
        if not reply:
            continue
        frames, last_id, finished = _frames(reply[0][1])
        position = last_id or position
        yield frames
        if finished:
            return
        next_keepalive = time.monotonic() + keepalive


def sse_response(run_id: str, start_id: str = "0-0") -> StreamingHttpResponse:
    response = StreamingHttpResponse(relay(run_id, start_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
