"""Run events travel worker/web → a capped Redis stream per run → the SSE relay. Replaying a
stream from its start means a client that subscribes late still sees every event."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import redis

from apps.core.redis_client import get_redis

logger = logging.getLogger(__name__)
T = TypeVar("T")

STREAM_MAXLEN = 20_000
STREAM_TTL_SECONDS = 3600
DONE = "done"


def stream_key(run_id: str) -> str:
    return f"run:{run_id}:events"


def cancel_key(run_id: str) -> str:
    """Set when the caller asked to cancel the run: its worker ends it `cancelled`."""
    return f"run:{run_id}:cancel"


def stop_key(run_id: str) -> str:
    """Set once the run has ended elsewhere (expired, failed by recovery, ended by an operator):
    a worker still holding it stops and ends nothing, for there is nothing left to end."""
    return f"run:{run_id}:stop"


def owner_key(run_id: str) -> str:
    """The attempt that owns the run: its worker's fencing token in Redis (the row's
    `attempts` is the token in the database)."""
    return f"run:{run_id}:owner"


class Superseded(Exception):
    """The worker's attempt no longer owns its run (recovery handed it to another): the write
    was refused and the worker must stop without touching the run again."""


# A Redis restart or failover takes a second or two; a worker rides it out rather than fail a
# run that is otherwise fine. Longer outages surface as errors.
REDIS_RETRY_SECONDS = 15.0
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def _never_ran(error: Exception) -> bool:
    """The command surely did not run: Redis could not be reached, or refused it while loading."""
    return isinstance(error, redis.BusyLoadingError) or "connecting to" in str(error)


def retrying(operation: Callable[[], T], what: str, *, idempotent: bool = True) -> T:
    """`operation`, retried through a Redis outage. An XADD is retried only when it surely did
    not run (a repeated one would repeat an event on the stream)."""
    deadline = time.monotonic() + REDIS_RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            return operation()
        except _TRANSIENT as error:
            if time.monotonic() + delay > deadline or not (idempotent or _never_ran(error)):
                raise
            logger.warning("redis unavailable for %s, retrying: %s", what, error)
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def _pipelined(queue_commands: Callable[[redis.client.Pipeline], None], what: str) -> list:
    """The commands `queue_commands` adds, sent in one round trip, retried as `retrying` does a
    non-idempotent write. A pipeline forgets its commands once executed, even when that failed,
    so each try builds its own."""
    def send() -> list:
        pipeline = get_redis().pipeline(transaction=False)
        queue_commands(pipeline)
        return pipeline.execute()

    return retrying(send, what, idempotent=False)


def publish(run_id: str, event: str, data: dict | str, *, pipeline=None) -> None:
    if pipeline is None:
        publish_many(run_id, [(event, data)])
        return
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    pipeline.xadd(stream_key(run_id), {"event": event, "data": payload},
                  maxlen=STREAM_MAXLEN, approximate=True)
    pipeline.expire(stream_key(run_id), STREAM_TTL_SECONDS)


# XADD unless the run was cancelled, told to stop, or another attempt owns it, in one atomic
# step: once a run has ended (its closing events and `done` follow the stop flag) a worker
# still streaming it cannot append after them, and a worker recovery replaced never appends.
_PUBLISH_UNLESS_STOPPED = """
local owner = redis.call('GET', KEYS[3])
if owner and owner ~= ARGV[#ARGV] then return -1 end
if redis.call('EXISTS', KEYS[2], KEYS[4]) > 0 then return 0 end
for i = 1, #ARGV - 3, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[#ARGV - 2], '*', 'event', ARGV[i], 'data', ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[#ARGV - 1])
return 1
"""


@cache
def _publish_unless_stopped_script():
    return get_redis().register_script(_PUBLISH_UNLESS_STOPPED)


def publish_unless_stopped(run_id: str, events: list[tuple[str, dict | str]], attempt: int) -> bool:
    """The worker's streaming events (creations and deltas); False when the run had stopped.
    Raises Superseded when another attempt owns the run."""
    args: list[str | int] = []
    for event, data in events:
        args += [event, data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))]
    script = _publish_unless_stopped_script()
    outcome = retrying(lambda: script(keys=[stream_key(run_id), cancel_key(run_id), owner_key(run_id),
                                            stop_key(run_id)],
                                      args=[*args, STREAM_MAXLEN, STREAM_TTL_SECONDS, attempt]),
                       "publish", idempotent=False)
    if outcome == -1:
        raise Superseded(run_id)
    return bool(outcome)


def publish_many(run_id: str, events: list[tuple[str, dict | str]]) -> None:
    def queue_commands(pipeline) -> None:
        for event, data in events:
            publish(run_id, event, data, pipeline=pipeline)

    _pipelined(queue_commands, "publish")


def publish_done(run_id: str) -> None:
    publish(run_id, DONE, "[DONE]")


def last_event_id(run_id: str) -> str:
    entries = get_redis().xrevrange(stream_key(run_id), count=1)
    return entries[0][0].decode() if entries else "0-0"


def request_cancel(run_id: str) -> None:
    get_redis().set(cancel_key(run_id), "1", ex=STREAM_TTL_SECONDS)


def request_stop(run_id: str) -> None:
    """The run has ended (expired by the sweeper, failed by recovery, …): a worker still holding
    it stops at its next check, as on a cancel, and publishes nothing more. Not a cancel: the
    worker must not take it for the caller's request and end the run a second way."""
    get_redis().set(stop_key(run_id), "1", ex=STREAM_TTL_SECONDS)


def cancel_requested(run_id: str) -> bool:
    return bool(retrying(lambda: get_redis().exists(cancel_key(run_id)), "cancel check"))


def stop_signals(run_id: str, attempt: int) -> tuple[bool, bool]:
    """(told to stop, by a cancel or by the run's end elsewhere; superseded by another attempt)
    for the worker holding `attempt`."""
    cancel, stop, owner = retrying(
        lambda: get_redis().mget([cancel_key(run_id), stop_key(run_id), owner_key(run_id)]),
        "stop check")
    told = cancel is not None or stop is not None
    return told, owner is not None and owner.decode() != str(attempt)


def claim(run_id: str, attempt: int, announce: tuple[str, dict] | None = None) -> None:
    """The attempt that just claimed the run owns it from now on; any older one is refused.
    `announce`, an event, is published in the same round trip, after."""
    def queue_commands(pipeline) -> None:
        pipeline.set(owner_key(run_id), str(attempt), ex=STREAM_TTL_SECONDS)
        if announce is not None:
            publish(run_id, *announce, pipeline=pipeline)

    _pipelined(queue_commands, "claim")


def revoke(run_id: str, attempt: int) -> None:
    """Recovery took the run from `attempt`: its worker, if it still lives, is refused from now
    on (the next claim takes attempt + 1 and owns it)."""
    retrying(lambda: get_redis().set(owner_key(run_id), str(attempt + 1), ex=STREAM_TTL_SECONDS),
             "revoke")


def heartbeat_key(run_id: str) -> str:
    return f"run:{run_id}:alive"


# Refreshes the liveness key only for the owning attempt; a lost owner key (Redis lost its
# data) is re-asserted by the beat, never overwritten. 0: another attempt owns the run.
_HEARTBEAT = """
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if owner then redis.call('EXPIRE', KEYS[2], ARGV[3]) else
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3]) end
return 1
"""


@cache
def _heartbeat_script():
    return get_redis().register_script(_HEARTBEAT)


def heartbeat(run_id: str, attempt: int, ttl: float) -> bool:
    """One beat for the attempt holding the run; False when another attempt owns it. Raises on
    Redis errors (the beating thread retries)."""
    return bool(_heartbeat_script()(keys=[heartbeat_key(run_id), owner_key(run_id)],
                                    args=[attempt, int(ttl * 1000), STREAM_TTL_SECONDS]))


def heartbeat_many(runs: list[tuple[str, int]], ttl: float) -> list[bool]:
    """`heartbeat` for many (run, attempt) at once, in one pipeline."""
    script = _heartbeat_script()
    pipeline = get_redis().pipeline(transaction=False)
    for run_id, attempt in runs:
        script(keys=[heartbeat_key(run_id), owner_key(run_id)],
               args=[attempt, int(ttl * 1000), STREAM_TTL_SECONDS], client=pipeline)
    return [bool(owned) for owned in pipeline.execute()]


def stop_signals_many(runs: list[tuple[str, int]]) -> list[tuple[bool, bool]]:
    """`stop_signals` for many (run, attempt) at once, in one MGET."""
    keys = [key for run_id, _ in runs
            for key in (cancel_key(run_id), stop_key(run_id), owner_key(run_id))]
    values = get_redis().mget(keys)
    return [(values[3 * i] is not None or values[3 * i + 1] is not None,
             values[3 * i + 2] is not None and values[3 * i + 2].decode() != str(attempt))
            for i, (_, attempt) in enumerate(runs)]


def alive(run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    flags = get_redis().mget([heartbeat_key(run_id) for run_id in run_ids])
    return {run_id for run_id, flag in zip(run_ids, flags, strict=True) if flag is not None}


def suspect_key(run_id: str, tag: str) -> str:
    return f"run:{run_id}:unseen:{tag}"


def unseen_for(marks: list[tuple[str, str]], now: float) -> dict[str, float]:
    """How long the sweeper has seen each (run, tag) without a live worker: the first sighting
    is recorded, so one missed beat (a Redis blip, a slow pass) never counts as a dead worker."""
    if not marks:
        return {}
    client = get_redis()
    pipeline = client.pipeline(transaction=False)
    for run_id, tag in marks:
        pipeline.set(suspect_key(run_id, tag), repr(now), nx=True, ex=STREAM_TTL_SECONDS)
    pipeline.execute()
    first = client.mget([suspect_key(run_id, tag) for run_id, tag in marks])
    return {run_id: now - float(seen) if seen is not None else 0.0
            for (run_id, _), seen in zip(marks, first, strict=True)}


def count_reenqueue(run_id: str, tag: str) -> int:
    """How often the sweeper enqueued this (run, tag) again before, counting this time."""
    key = f"run:{run_id}:reenqueued:{tag}"
    pipeline = get_redis().pipeline(transaction=False)
    pipeline.incr(key)
    pipeline.expire(key, STREAM_TTL_SECONDS)
    return int(pipeline.execute()[0]) - 1


def reenqueues(run_ids_tags: list[tuple[str, str]]) -> dict[str, int]:
    if not run_ids_tags:
        return {}
    counts = get_redis().mget([f"run:{run_id}:reenqueued:{tag}" for run_id, tag in run_ids_tags])
    return {run_id: int(count or 0) for (run_id, _), count in zip(run_ids_tags, counts, strict=True)}


def clear_suspicion(marks: list[tuple[str, str]]) -> None:
    if marks:
        get_redis().delete(*[suspect_key(run_id, tag) for run_id, tag in marks])
