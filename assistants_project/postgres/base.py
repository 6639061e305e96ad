"""Django's Postgres backend, with a pooled connection checked without a round trip when it
plainly is alive.

Django's pool checks every connection it lends with an empty query: one round trip per request,
and several per run (a run gives its connection back while the model thinks). A connection
the server closed (a restart, a crash, an idle timeout) has something to read on its socket,
the server's goodbye or the end of the stream; a live idle one has nothing. So the empty query
is sent only for a connection with something to read, or one not idle; that one fails and is
replaced as before."""

from __future__ import annotations

import select

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg import pq
from psycopg_pool import ConnectionPool


def check_pooled_connection(conn: psycopg.Connection) -> None:
    if _plainly_alive(conn):
        return
    ConnectionPool.check_connection(conn)


def _plainly_alive(conn: psycopg.Connection) -> bool:
    if conn.closed or conn.info.status != pq.ConnStatus.OK:
        return False
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django's: it sets its own mode later
            checks = self.settings_dict["CONN_HEALTH_CHECKS"]
            pool = ConnectionPool(
                kwargs=connect_kwargs, open=False, configure=self._configure_connection,
                check=check_pooled_connection if checks else None,
                **({} if pool_options is True else pool_options),
            )
            # Threads racing to build the first pool: the first one's wins, as in Django.
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
