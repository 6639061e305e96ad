"""A second set of real processes (web, run and sandbox workers) beside the session stack, with
settings of its own: the same Postgres and Redis servers, but a database of its own on each, so
its runs, broker, event streams and sandboxes stay apart from the main stack's (whose beat
would otherwise take the side's runs for orphans). And an SDK transport that records the
raw bytes of every event stream, for what the SDK hides (keep-alive comments, `done`)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2

from assistants_project.stack import Stack


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        # urlunsplit would drop the empty host, and redis-py needs unix:///path.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))


def database_url_named(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _fresh_database(main_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(main_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return database_url_named(main_url, name)


def start_side_stack(main: Stack, name: str, env: dict[str, str], queues: tuple[str, ...],
                     redis_db: int) -> tuple[Stack, str]:
    """Web plus workers for `queues`, on a fresh Postgres database and Redis database
    `redis_db`; returns the stack and an API key for it. The caller stops it with
    `stop_side_stack`."""
    side = Stack(
        data_dir=main.data_dir,
        port=_free_port(),
        log_dir=main.data_dir / "logs" / name,
        with_beat=False,
        extra_env={
            **main.extra_env,
            # Children of the test process would otherwise read tests.settings, which drops
            # DATABASE_URL and REDIS_URL in favour of the main stack's.
            "DJANGO_SETTINGS_MODULE": "assistants_project.settings",
            "DATABASE_URL": _fresh_database(main.env["DATABASE_URL"], f"side_{name}"),
            "REDIS_URL": redis_url_with_db(main.env["REDIS_URL"], redis_db),
            **env,
        },
    )
    side.start_services()
    side.manage("migrate", "--noinput", "-v", "0")
    key = side.manage("create_api_key", "--project", name, capture=True).strip().splitlines()[-1]
    side.start_web()
    for queue in queues:
        side.start_worker(queue)
    side.wait_until_serving()
    return side, key


def stop_side_stack(side: Stack) -> None:
    side.stop()
    with contextlib.suppress(subprocess.CalledProcessError):
        side.manage("remove_sandboxes", capture=True)


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
