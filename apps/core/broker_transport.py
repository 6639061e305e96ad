"""Celery's Redis transport, with one redis-py client per channel instead of one per command.

kombu's Redis channel builds a new `redis.Redis` over its connection pool for every publish,
every unacked-index update and every ack. In redis-py 8 a client's construction copies its
whole table of reply callbacks, so a runs worker spent about 7% of its CPU building clients
it used once. A client over a pool is safe to share between threads, so the channel keeps
one, and builds another only when kombu replaces the pool (after a lost connection).

Both spellings of a Redis broker URL (`redis://` and the unix socket's `redis+socket://`)
pick their transport from kombu's alias table, so that is where this one is installed.

A channel closed after its connection was (Celery does so when the broker goes away) has no
connection parameters left to build a pool from: asking it for a client is a connection error,
which Celery rides out by reconnecting. Stock kombu raises AttributeError there,
and the worker stops with "Unrecoverable error" at every Redis restart."""

from __future__ import annotations

import threading

from kombu import transport as kombu_transports
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    _shared_client = None
    _shared_client_lock = threading.Lock()

    def _create_client(self, asynchronous: bool = False):
        pool = self._async_pool if asynchronous else self._pool
        if pool is None and self.connection.client is None:
            raise RedisConnectionError("the broker connection is closed")
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            with self._shared_client_lock:
                client = self._shared_client
                if client is None or client.connection_pool is not self.pool:
                    client = self._shared_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    for alias in ("redis", "rediss"):
        kombu_transports.TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
        kombu_transports._transport_cache.pop(alias, None)
