"""Runs the whole system on one machine: embedded Postgres and Redis (unless DATABASE_URL /
REDIS_URL point elsewhere), migrations, the dev API key, then web, workers and beat as child
processes. Used by `make run` (manage.py serve, which supervises them) and by the test suite.

Every child is started through `_spawn`, which records how to start it again: `units()` hands
all of them (and the embedded Postgres, a daemon of pg_ctl's) to the supervisor."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ops import embedded, embedded_models
from ops.supervisor import TAIL_LINES, Unit

BASE_DIR = Path(__file__).resolve().parent.parent

# Runs mostly wait on the model: a waiting run holds a thread but no database connection
# (its writes borrow one from the pool), so one process carries many at once.
RUNS_CONCURRENCY = os.environ.get("RUNS_WORKER_CONCURRENCY", "1200")

# Web processes: each has its own interpreter lock, event loop and database pool. One process
# runs one thread of Python at a time, so a thousand open streams and the requests that opened
# them queue behind each other there; a second process serves beside it (uvicorn's workers,
# sharing one socket). Past the cores there is nothing more to gain.
WEB_PROCESSES = os.environ.get("WEB_PROCESSES") or str(min(2, os.cpu_count() or 1))

WORKER_QUEUES = {
    "runs": ["-Q", "runs", "-P", "threads", "-c", RUNS_CONCURRENCY],
    "ingest": ["-Q", "ingest", "-P", "threads", "-c", "2"],
    "sandbox": ["-Q", "sandbox", "-P", "threads", "-c", "8"],
}


@dataclass
class Stack:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    extra_env: dict[str, str] = field(default_factory=dict)
    with_beat: bool = True
    log_dir: Path | None = None
    children: dict[str, subprocess.Popen] = field(default_factory=dict)
    # How each child was started, so it can be started again the same way.
    commands: dict[str, list[str]] = field(default_factory=dict)
    # Shared services, stopped after the application processes (runs still finishing need
    # the model server).
    services: tuple[str, ...] = ("models", "redis")
    tails: dict[str, deque] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    embedded_postgres: bool = False
    # serve: children's output goes to log_dir; only warnings and errors reach the terminal.
    quiet_console: bool = False
    model_server: embedded_models.ModelServer | None = None
    # Each worker and beat serves /metrics on a free port of its own (METRICS_PORT=0: none).
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def redis_process(self) -> subprocess.Popen | None:
        return self.children.get("redis")

    # -- services -------------------------------------------------------------------------
    def start_services(self) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.extra_env)
        env["DATA_DIR"] = str(self.data_dir)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = embedded.start_postgres(self.data_dir)
            self.embedded_postgres = True
        self.env = env
        if not env.get("REDIS_URL"):
            self.start_redis()
            env["REDIS_URL"] = embedded.embedded_redis_url(self.data_dir)
        env.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
        env.setdefault("PYTHONUNBUFFERED", "1")
        # The multi-process metric files are this deployment's: a restart starts from zero.
        # Per port: another deployment started on the same DATA_DIR (a test's side stack) must
        # not wipe the files this one's processes are writing.
        # Never inherited from our own environment (the test process may have one of its own).
        if "PROMETHEUS_MULTIPROC_DIR" not in self.extra_env:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.data_dir / "metrics" / str(self.port))
        shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
        self.start_models(env)
        self.env = env
        return env

    def start_models(self, env: dict[str, str]) -> None:
        """The embedded chat and embedding models, when no backend is configured for them; the
        other children learn where they serve (and the real context window) from `env`."""
        chat = embedded_models.wants_embedded_chat(env)
        embeddings = embedded_models.wants_embedded_embeddings(env)
        if not (chat or embeddings):
            return
        log_dir = self.log_dir or self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "models.log", "ab") as output:
            self.model_server = embedded_models.start_model_server(
                env, self.data_dir, chat=chat, embeddings=embeddings, stdout=output)
        self.children["models"] = self.model_server.process
        env.update(self.model_server.env())

    def manage(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.env,
            cwd=BASE_DIR,
            check=True,
            text=True,
            capture_output=capture,
        )
        return result.stdout if capture else ""

    def ensure_dev_key(self, project: str = "dev") -> str:
        """The dev key survives restarts: reuse DATA_DIR/dev-api-key while it still works."""
        key_file = self.data_dir / "dev-api-key"
        if key_file.exists():
            raw = key_file.read_text().strip()
            check = self.manage("check_api_key", raw, capture=True).strip()
            if check == "valid":
                return raw
        output = self.manage("create_api_key", "--project", project, "--name", "dev", capture=True)
        raw = output.strip().splitlines()[-1]
        key_file.write_text(raw + "\n")
        key_file.chmod(0o600)
        return raw

    def start_redis(self) -> subprocess.Popen:
        embedded.prepare_redis(self.data_dir)
        process = self._spawn("redis", embedded.redis_argv(self.data_dir))
        embedded.wait_for_redis(self.data_dir, process)
        return process

    # -- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        """Start a child (and remember how). Its output goes to log_dir/NAME.log when there is
        a log_dir, else through to our stdout, its last lines kept for a post-mortem."""
        self.commands[name] = argv
        env = self.env
        if name.startswith(("worker-", "beat")) and env.get("METRICS_PORT") != "0":
            # A restarted child keeps its port, so a scraper finds it again.
            self.metrics_ports[name] = self.metrics_ports.get(name) or _free_port(self.host)
            env = {**env, "METRICS_PORT": str(self.metrics_ports[name]), "METRICS_HOST": self.host}
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if self.quiet_console:
                # Records go to the file at LOG_LEVEL and to the terminal from WARNING up.
                env = {**env, "LOG_FILE": str(self.log_dir / f"{name}.log"), "LOG_CONSOLE_LEVEL": "WARNING"}
            with open(self.log_dir / f"{name}.log", "ab") as output:
                process = subprocess.Popen(
                    argv, env=env, cwd=BASE_DIR, stdout=output,
                    stderr=None if self.quiet_console else subprocess.STDOUT, start_new_session=True)
        else:
            process = subprocess.Popen(argv, env=env, cwd=BASE_DIR, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            tail = self.tails.setdefault(name, deque(maxlen=TAIL_LINES))
            threading.Thread(target=_pump, args=(process, tail), name=f"output-{name}",
                             daemon=True).start()
        self.children[name] = process
        return process

    def restart_child(self, name: str) -> subprocess.Popen:
        """Start a child that died (or was stopped) again, as it was first started."""
        if name == "redis":
            return self.start_redis()
        if name == "models":
            self.start_models(self.env)
            # The new server listens on new ports: the application processes learn them by
            # starting again (the supervisor restarts them; their runs are resumed).
            for child in [n for n in self.children if n not in self.services]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.children[child].pid, signal.SIGTERM)
            return self.children["models"]
        return self._spawn(name, self.commands[name])

    def web_pids(self) -> list[int]:
        """The processes serving requests: uvicorn's workers, or the web process itself when
        it serves alone."""
        pid = self.children["web"].pid
        with contextlib.suppress(OSError):
            workers = [int(child) for child in
                       Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            if workers:
                return workers
        return [pid]

    def tail(self, name: str, lines: int = TAIL_LINES) -> list[str]:
        if name == "postgres":
            path = embedded.postgres_log(self.data_dir)
        elif self.log_dir is not None:
            path = self.log_dir / f"{name}.log"
        else:
            return list(self.tails.get(name, ()))[-lines:]
        with contextlib.suppress(OSError), open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
            return log.read().decode(errors="replace").splitlines()[-lines:]
        return []

    def units(self) -> list[Unit]:
        """What the supervisor watches: every child started through `_spawn`, and the embedded
        Postgres."""
        units = [Unit(name, process.poll, lambda name=name: self.restart_child(name),
                      lambda lines, name=name: self.tail(name, lines))
                 for name, process in list(self.children.items())]
        if self.embedded_postgres:
            units.append(Unit(
                "postgres",
                lambda: None if embedded.postgres_pid(self.data_dir) else "no postmaster",
                lambda: embedded.restart_postgres(self.data_dir),
                lambda lines: self.tail("postgres", lines)))
        return units

    def start_web(self) -> None:
        self._spawn("web", [
            sys.executable, "-m", "uvicorn", "assistants_project.asgi:application",
            "--host", self.host, "--port", str(self.port), "--no-access-log",
            # An idle connection is kept past its client's own expiry (httpx, so the SDKs: 5 s)
            # and a proxy's (60 s): the client lets go first, and never sends a request into a
            # connection being closed (a "Connection error" on a POST it must not retry).
            "--timeout-keep-alive", "75",
            "--workers", WEB_PROCESSES,
            # Past the streams' drain (WEB_DRAIN_SECONDS, plus one Redis block), so a stream
            # ends with `done` before uvicorn would cut it.
            "--timeout-graceful-shutdown", str(int(float(self.env.get("WEB_DRAIN_SECONDS") or 5) + 7)),
            *(["--log-level", "warning"] if self.quiet_console else []),
        ])

    def worker_argv(self, queue: str) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "assistants_project", "worker",
            *WORKER_QUEUES[queue], "-n", f"{queue}-{os.getpid()}-{self.port}@%h", "--loglevel", "INFO",
            # No Celery worker heartbeat events either: nothing reads them (runs prove alive
            # through their own heartbeats), and each costs the busy worker a publish.
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]

    def start_worker(self, queue: str) -> subprocess.Popen:
        return self._spawn(f"worker-{queue}", self.worker_argv(queue))

    def start_beat(self) -> None:
        self._spawn("beat", [
            sys.executable, "-m", "celery", "-A", "assistants_project", "beat",
            "--loglevel", "INFO", "-s", str(self.data_dir / "celerybeat-schedule"),
        ])

    def start_all(self) -> None:
        self.start_web()
        for queue in WORKER_QUEUES:
            self.start_worker(queue)
        if self.with_beat:
            self.start_beat()

    def wait_until_serving(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.host}:{self.port}/healthz"
        while time.monotonic() < deadline:
            web = self.children.get("web")
            if web is not None and web.poll() is not None:
                raise RuntimeError(f"web process exited with {web.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{url} did not answer within {timeout} s")

    def stop_child(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        process = self.children.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        # Every application process is told at once, so their graceful shutdowns overlap.
        names = [name for name in reversed(list(self.children)) if name not in self.services]
        for name in names:
            with contextlib.suppress(ProcessLookupError):
                if self.children[name].poll() is None:
                    os.killpg(self.children[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        for name in names:
            process = self.children.pop(name)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.redis_process is not None and self.redis_process.poll() is None:
            # The deployment lives and dies with this command: its sandboxes go with it.
            with contextlib.suppress(subprocess.CalledProcessError):
                self.manage("remove_sandboxes", capture=True)
        for name in self.services:
            self.stop_child(name)
        if self.embedded_postgres:
            embedded.stop_postgres(self.data_dir)


def _pump(process: subprocess.Popen, tail: deque) -> None:
    """A child's output, through to ours as it comes, the last lines kept."""
    for raw in process.stdout:
        line = raw.decode(errors="replace")
        tail.append(line.rstrip("\n"))
        sys.stdout.write(line)
        sys.stdout.flush()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
