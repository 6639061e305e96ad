"""Runs the whole system on one machine: embedded Postgres and Redis (unless DATABASE_URL /
REDIS_URL point elsewhere), migrations, the dev API key, then web, workers and beat as child
processes. Used by `make run` (manage.py serve) and by the test suite."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from assistants_project import embedded, embedded_models

BASE_DIR = Path(__file__).resolve().parent.parent

WORKER_QUEUES = {
    # Runs mostly wait on the model, so a thread pool carries many at once.
    "runs": ["-Q", "runs", "-P", "threads", "-c", "16"],
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
    redis_process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    embedded_postgres: bool = False
    # serve: children's output goes to log_dir; only warnings and errors reach the terminal.
    quiet_console: bool = False
    model_server: embedded_models.ModelServer | None = None

    # -- services -------------------------------------------------------------------------
    def start_services(self) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.extra_env)
        env["DATA_DIR"] = str(self.data_dir)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = embedded.start_postgres(self.data_dir)
            self.embedded_postgres = True
        if not env.get("REDIS_URL"):
            self.redis_process, env["REDIS_URL"] = embedded.start_redis(self.data_dir)
        env.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
        env.setdefault("PYTHONUNBUFFERED", "1")
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

    # -- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        output = None
        env = self.env
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (lives with child)
        if output is not None and self.quiet_console:
            # Records go to the file at LOG_LEVEL and to the terminal from WARNING up.
            env = {**env, "LOG_FILE": str(self.log_dir / f"{name}.log"), "LOG_CONSOLE_LEVEL": "WARNING"}
        process = subprocess.Popen(
            argv, env=env, cwd=BASE_DIR, stdout=output,
            stderr=subprocess.STDOUT if output and not self.quiet_console else None,
            start_new_session=True,
        )
        self.children[name] = process
        return process

    def start_web(self) -> None:
        self._spawn("web", [
            sys.executable, "-m", "uvicorn", "assistants_project.asgi:application",
            "--host", self.host, "--port", str(self.port), "--no-access-log",
            "--timeout-graceful-shutdown", "5",
            *(["--log-level", "warning"] if self.quiet_console else []),
        ])

    def worker_argv(self, queue: str) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "assistants_project", "worker",
            *WORKER_QUEUES[queue], "-n", f"{queue}-{os.getpid()}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
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
        # The model server last: runs still finishing need it.
        for name in sorted(self.children, key=lambda child: child == "models"):
            self.stop_child(name)
        if self.redis_process is not None and self.redis_process.poll() is None:
            # The deployment lives and dies with this command: its sandboxes go with it.
            with contextlib.suppress(subprocess.CalledProcessError):
                self.manage("remove_sandboxes", capture=True)
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.terminate()
            try:
                self.redis_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis_process.kill()
        if self.embedded_postgres:
            embedded.stop_postgres(self.data_dir)
