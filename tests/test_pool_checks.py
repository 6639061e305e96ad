"""A pooled connection is lent without a round trip when it plainly is alive, and one the
server closed is still found out and replaced (assistants_project/postgres/base.py)."""

from __future__ import annotations

import select
import time

import psycopg
from django.db import connection
from psycopg_pool import ConnectionPool

from assistants_project.postgres.base import _plainly_alive, check_pooled_connection


def _kill(backend_pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])


def _wait_readable(conn: psycopg.Connection) -> None:
    deadline = time.monotonic() + 5
    while not select.select([conn.fileno()], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server never closed the connection"


def test_a_connection_the_server_closed_is_replaced_and_a_live_one_lent_as_it_is(orm):
    params = connection.get_connection_params()
    with ConnectionPool(kwargs={**params, "autocommit": True}, min_size=1, max_size=1,
                        check=check_pooled_connection, open=True) as pool:
        with pool.connection() as conn:
            first = conn.info.backend_pid
            assert _plainly_alive(conn)
        with pool.connection() as conn:
            assert conn.info.backend_pid == first  # lent again, no reconnect
            conn.execute("BEGIN")
            assert not _plainly_alive(conn)  # not idle: checked the slow way
            conn.execute("ROLLBACK")
            _kill(first)
            _wait_readable(conn)
            assert not _plainly_alive(conn)
        with pool.connection() as conn:
            assert conn.info.backend_pid != first
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_sites_connections_come_from_a_pool_with_this_check(orm):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert connection.pool is not None
    assert connection.pool._check is check_pooled_connection
