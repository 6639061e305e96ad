"""A second set of real processes (web, run and sandbox workers) beside the session stack, with
settings of its own: a Redis of its own (which a test may stop), and a database of its own on
the main Postgres, so its runs, broker, event streams and sandboxes stay apart from the main
stack's (whose beat would otherwise take the side's runs for orphans). And an SDK transport that records the
raw bytes of every event stream, for what the SDK hides (keep-alive comments, `done`)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx2

from ops.stack import Stack


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url_named(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _fresh_database(main_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(main_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return database_url_named(main_url, name)


def start_side_stack(main: Stack, name: str, env: dict[str, str], queues: tuple[str, ...],
                     redis_url: str | None = None,
                     database_url: str | None = None) -> tuple[Stack, str | None]:
    """Web plus workers for `queues`, on a Redis of its own (or `redis_url`) and a fresh
    Postgres database on the main server (or `database_url`, already migrated); returns the
    stack and, for a fresh database, an API key. The caller stops it with `side.stop()`."""
    side = Stack(
        data_dir=main.data_dir / f"side-{name}",
        port=_free_port(),
        log_dir=main.data_dir / "logs" / name,
        with_beat=False,
        extra_env={
            **main.extra_env,
            # Children of the test process would otherwise read tests.settings, which drops
            # DATABASE_URL and REDIS_URL in favour of the main stack's.
            "DJANGO_SETTINGS_MODULE": "assistants_project.settings",
            "DATABASE_URL": database_url or _fresh_database(main.env["DATABASE_URL"], f"side_{name}"),
            **({"REDIS_URL": redis_url} if redis_url else {}),
            **env,
        },
    )
    side.start_services()
    key = None
    if database_url is None:
        side.manage("migrate", "--noinput", "-v", "0")
        key = side.manage("create_api_key", "--project", name, capture=True).strip().splitlines()[-1]
    side.start_web()
    for queue in queues:
        side.start_worker(queue)
    side.wait_until_serving()
    return side, key


@dataclass
class RecordedStream:
    """Each chunk of one event stream as the client read it, with the time it was read."""
    chunks: list[tuple[float, bytes]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return b"".join(chunk for _, chunk in self.chunks).decode()

    def keep_alives_between(self, start: float, end: float) -> int:
        return sum(chunk.count(b": keep-alive") for at, chunk in self.chunks if start <= at <= end)


class _RecordingBody(httpx2.SyncByteStream):
    def __init__(self, inner, record: RecordedStream) -> None:
        self._inner = inner
        self._record = record

    def __iter__(self):
        for chunk in self._inner:
            self._record.chunks.append((time.monotonic(), bytes(chunk)))
            yield chunk

    def close(self) -> None:
        self._inner.close()


class RecordingTransport(httpx2.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.streams: list[RecordedStream] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            record = RecordedStream()
            with self._lock:
                self.streams.append(record)
            response.stream = _RecordingBody(response.stream, record)
        return response
