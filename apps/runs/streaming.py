"""Relays a run's Redis stream to the client as Server-Sent Events, in order, from a given
position, with keep-alive comments while nothing happens.

However long a run is quiet (a slow first token, upstream retries, a long code execution), the
stream stays open. Redis trouble is ridden out: a dropped connection or a timeout is retried,
reading again after the last event delivered, so nothing is lost or repeated. Only an outage
longer than OUTAGE_SECONDS ends the stream, and then with `error` and `done`, never silence.

The relay holds no database connection (apps/core/streams.py); while the stream is quiet it
reads the run's status now and then, so a run that ended while its closing events were lost
ends its stream within seconds rather than at the run's expiry. When the web process shuts
down (apps/core/shutdown.py), a stream still open WEB_DRAIN_SECONDS later ends with `done`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection
from django.http import StreamingHttpResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.core.redis_client import block_ms, get_async_redis
from apps.core.shutdown import drain_deadline
from apps.core.streams import streaming_response
from apps.runs.events import DONE, stream_key
from apps.runs.models import TERMINAL_STATUSES, Run

logger = logging.getLogger(__name__)

READ_BATCH = 200
KEEP_ALIVE = b": keep-alive\n\n"
# Long enough to outlast a Redis restart or failover, short enough that a client is told soon.
OUTAGE_SECONDS = 10.0
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)

# How long the stream must be quiet before the run's row is read, and how often after that.
ENDED_CHECK_SECONDS = 5.0
# The worker writes the row first and publishes after: an ended row gives the events this long.
ENDED_GRACE_SECONDS = 2.0
STREAM_END_STATUSES = (*TERMINAL_STATUSES, "requires_action")
STREAM_END_EVENTS = {f"thread.run.{status}" for status in STREAM_END_STATUSES}
DONE_FRAME = b"event: done\ndata: [DONE]\n\n"
# The web process shuts down and the run goes on: the stream ends cleanly, as it does while a
# run waits on the caller, and the client follows the run through another web process.
DRAINED_FRAMES = (b": this server is shutting down; the run goes on: retrieve it to follow it\n\n"
                  + DONE_FRAME)

OUTAGE_MESSAGE = ("The run's event stream is unavailable. The run goes on: retrieve it to "
                  "follow its progress.")
UNEXPECTED_MESSAGE = "The run's event stream ended unexpectedly."


def _error_frames(message: str) -> bytes:
    error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return (f"event: error\ndata: {json.dumps(error)}\n\n" "event: done\ndata: [DONE]\n\n").encode()


def _frames(entries: list) -> tuple[bytes, bytes, str]:
    """The SSE frames for a batch of stream entries, and the ID and name of the last entry
    relayed (nothing after `done` is)."""
    chunks = []
    for entry_id, fields in entries:
        position, name = entry_id, fields[b"event"].decode()
        chunks.append(b"event: " + fields[b"event"] + b"\ndata: " + fields[b"data"] + b"\n\n")
        if name == DONE:
            break
    return b"".join(chunks), position, name


def _run_statuses(run_ids: list[str]) -> dict[str, str]:
    try:
        return dict(Run.objects.filter(pk__in=run_ids).values_list("pk", "status"))
    finally:
        connection.close()  # straight back to the pool


class _StatusReads:
    """The quiet streams' reads of their runs' status, gathered: the streams of this event loop
    that are due within BATCH_SECONDS of each other share one query. A thousand quiet streams
    each reading alone cost the web process a tenth of its time."""

    BATCH_SECONDS = 0.05

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future]] = {}
        # The loop holds its tasks weakly: one nobody refers to can vanish before it is done,
        # and with it the answer its streams wait for.
        self._reading: set[asyncio.Task] = set()

    async def status(self, run_id: str) -> str | None:
        future = asyncio.get_running_loop().create_future()
        if not self._waiting:
            reading = asyncio.get_running_loop().create_task(self._read())
            self._reading.add(reading)
            reading.add_done_callback(self._reading.discard)
        self._waiting.setdefault(run_id, []).append(future)
        return await future

    async def _read(self) -> None:
        await asyncio.sleep(self.BATCH_SECONDS)
        waiting, self._waiting = self._waiting, {}
        found: dict[str, str] = {}
        failure: Exception | None = None
        try:
            found = await sync_to_async(_run_statuses, thread_sensitive=False)(list(waiting))
        except Exception as error:  # noqa: BLE001 (each stream decides what a failed read means)
            failure = error
        for run_id, futures in waiting.items():
            for future in futures:
                if future.done():
                    continue  # its stream went away meanwhile
                if failure is not None:
                    future.set_exception(failure)
                else:
                    future.set_result(found.get(run_id))


_status_reads: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _run_has_ended(run_id: str) -> tuple[bool, str | None]:
    loop = asyncio.get_running_loop()
    reads = _status_reads.get(loop)
    if reads is None:
        reads = _status_reads[loop] = _StatusReads()
    try:
        status = await reads.status(run_id)
    except DatabaseError:
        logger.warning("SSE relay could not read run %s; it keeps waiting", run_id, exc_info=True)
        return False, None
    return status is None or status in STREAM_END_STATUSES, status


def _closing_frames(status: str | None, last_event: str | None) -> bytes:
    """The end of a stream whose run ended without its `done` reaching the stream."""
    if last_event in STREAM_END_EVENTS:
        return DONE_FRAME  # only `done` was lost: the client already has the outcome
    if status is None:
        return _error_frames("The run no longer exists.")
    return _error_frames(f"The run ended ({status}), but its final events were lost. "
                         "Retrieve the run for its outcome.")


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
    next_check = time.monotonic() + ENDED_CHECK_SECONDS
    ended_since: float | None = None
    ended_status: str | None = None
    last_event: str | None = None
    failures = 0
    failing_since: float | None = None
    while True:
        now = time.monotonic()
        if now > deadline:
            yield _error_frames(UNEXPECTED_MESSAGE)
            return
        drain_at = drain_deadline()
        if drain_at is not None and now >= drain_at:
            yield DRAINED_FRAMES
            return
        if now >= next_keepalive:
            yield KEEP_ALIVE
            next_keepalive = now + keepalive
        if ended_since is not None and now - ended_since >= ENDED_GRACE_SECONDS:
            yield _closing_frames(ended_status, last_event)
            return
        if ended_since is None and now >= next_check:
            ended, ended_status = await _run_has_ended(run_id)
            next_check = time.monotonic() + ENDED_CHECK_SECONDS
            ended_since = time.monotonic() if ended else None
        wake = min(next_keepalive, next_check if ended_since is None else ended_since + ENDED_GRACE_SECONDS,
                   drain_at if drain_at is not None else next_keepalive)
        try:
            # Blocks of at most the client's limit: the socket must outlast every block.
            reply = await get_async_redis().xread({key: position}, count=READ_BATCH,
                                                  block=block_ms(wake - time.monotonic()))
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
        frames, position, last_event = _frames(reply[0][1])
        yield frames
        if last_event == DONE:
            return
        next_keepalive = time.monotonic() + keepalive
        next_check = time.monotonic() + ENDED_CHECK_SECONDS
        ended_since = None


def sse_response(run_id: str, start_id: str = "0-0") -> StreamingHttpResponse:
    response = streaming_response(relay(run_id, start_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
