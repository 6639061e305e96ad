"""The one place where the web and worker processes get their Redis clients, sync and async, and
where their socket timeouts are set.

A blocking command (XREAD BLOCK, BLPOP) leaves its socket silent for its whole block time, so a
socket timeout shorter than the block cuts a healthy wait: redis-py's default of 5 s broke every
SSE stream that was quiet for 5 s. So every blocking call takes its block time from
`block_seconds()` / `block_ms()`, which never exceed MAX_BLOCK_SECONDS, and every socket waits
SOCKET_TIMEOUT_SECONDS, a clear margin longer, before it calls its connection dead. A caller
that wants to wait longer loops over blocks of at most that size.

Locks (redis-py's `Lock`) poll with short non-blocking commands, so they need nothing more.
Celery's broker connection belongs to kombu, whose BRPOP polls once a second.

No client retries on its own: only the caller knows whether its command is safe to send twice
(a repeated XADD would repeat an event), so retries live with the callers (the SSE relay)."""

from __future__ import annotations

import asyncio
import weakref
from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings

MAX_BLOCK_SECONDS = 5.0
SOCKET_TIMEOUT_SECONDS = MAX_BLOCK_SECONDS + 5.0
CONNECT_TIMEOUT_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 30
# Every open SSE stream holds one connection while it blocks, so redis-py's default pool of 100
# would fail the 101st stream; Redis's own `maxclients` (10,000 by default) is the real bound.
MAX_CONNECTIONS = 10_000

_OPTIONS = {
    "socket_timeout": SOCKET_TIMEOUT_SECONDS,
    "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
    "health_check_interval": HEALTH_CHECK_SECONDS,
    "max_connections": MAX_CONNECTIONS,
}


def block_seconds(wanted: float) -> float:
    """The block time for a blocking command that would like to wait `wanted` seconds: never
    longer than the socket allows, and never 0 (which Redis reads as "forever")."""
    return max(0.001, min(wanted, MAX_BLOCK_SECONDS))


def block_ms(wanted: float) -> int:
    return max(1, int(block_seconds(wanted) * 1000))


@cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, **_OPTIONS)


# An asyncio client's connections belong to the event loop that opened them: one client per loop.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary())


def get_async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, **_OPTIONS)
        _async_clients[loop] = client
    return client
