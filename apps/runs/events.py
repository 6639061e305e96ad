"""Run events travel worker/web → a capped Redis stream per run → the SSE relay. Replaying a
stream from its start means a client that subscribes late still sees every event."""

from __future__ import annotations

import json
from functools import cache

from apps.core.redis_client import get_redis

STREAM_MAXLEN = 20_000
STREAM_TTL_SECONDS = 3600
DONE = "done"


def stream_key(run_id: str) -> str:
    return f"run:{run_id}:events"


def cancel_key(run_id: str) -> str:
    return f"run:{run_id}:cancel"


def publish(run_id: str, event: str, data: dict | str, *, pipeline=None) -> None:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    target = pipeline if pipeline is not None else get_redis().pipeline(transaction=False)
    target.xadd(stream_key(run_id), {"event": event, "data": payload},
                maxlen=STREAM_MAXLEN, approximate=True)
    target.expire(stream_key(run_id), STREAM_TTL_SECONDS)
    if pipeline is None:
        target.execute()


# XADD unless the run was told to stop, in one atomic step: once a run has ended (its closing
# events and `done` follow the stop flag) a worker still streaming it cannot append after them.
_PUBLISH_UNLESS_STOPPED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 1, #ARGV - 2, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[#ARGV - 1], '*', 'event', ARGV[i], 'data', ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[#ARGV])
return 1
"""


@cache
def _publish_unless_stopped_script():
    return get_redis().register_script(_PUBLISH_UNLESS_STOPPED)


def publish_unless_stopped(run_id: str, events: list[tuple[str, dict | str]]) -> bool:
    """The worker's streaming events (creations and deltas); False when the run had stopped."""
    args: list[str | int] = []
    for event, data in events:
        args += [event, data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))]
    script = _publish_unless_stopped_script()
    return bool(script(keys=[stream_key(run_id), cancel_key(run_id)],
                       args=[*args, STREAM_MAXLEN, STREAM_TTL_SECONDS]))


def publish_many(run_id: str, events: list[tuple[str, dict | str]]) -> None:
    pipeline = get_redis().pipeline(transaction=False)
    for event, data in events:
        publish(run_id, event, data, pipeline=pipeline)
    pipeline.execute()


def publish_done(run_id: str) -> None:
    publish(run_id, DONE, "[DONE]")


def last_event_id(run_id: str) -> str:
    entries = get_redis().xrevrange(stream_key(run_id), count=1)
    return entries[0][0].decode() if entries else "0-0"


def request_cancel(run_id: str) -> None:
    get_redis().set(cancel_key(run_id), "1", ex=STREAM_TTL_SECONDS)


def request_stop(run_id: str) -> None:
    """The run has ended (expired by the sweeper, failed by recovery, …): a worker still holding
    it stops at its next check, exactly as on a cancel, and publishes nothing more."""
    request_cancel(run_id)


def cancel_requested(run_id: str) -> bool:
    return bool(get_redis().exists(cancel_key(run_id)))


def heartbeat_key(run_id: str) -> str:
    return f"run:{run_id}:alive"


def heartbeat(run_id: str, ttl: float) -> None:
    get_redis().set(heartbeat_key(run_id), "1", px=int(ttl * 1000))


def alive(run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    flags = get_redis().mget([heartbeat_key(run_id) for run_id in run_ids])
    return {run_id for run_id, flag in zip(run_ids, flags, strict=True) if flag is not None}
