"""Helpers of the limit and retry tests: projects with their own limits, a second web process
on the same Postgres and Redis, and a proxy that loses a response on its way back."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def project_with_limits(stack, **fields) -> tuple[str, str]:
    """A new project (its id and an API key) whose Project row carries `fields`."""
    from apps.core.models import Project
    from tests.conftest import new_project_key

    name = f"limits-{uuid.uuid4().hex[:12]}"
    key = new_project_key(stack, name)
    Project.objects.filter(name=name).update(**fields)
    return Project.objects.get(name=name).pk, key


class WebProcess:
    """Another uvicorn web process of the same deployment (same database and Redis)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> WebProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        output = open(self.log_path, "ab")  # noqa: SIM115 (lives with the child)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "assistants_project.asgi:application", "--host",
             "127.0.0.1", "--port", str(self.port), "--no-access-log"],
            env=self.env, cwd=BASE_DIR, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the second web process exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.root}/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the second web process did not start")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class LossyProxy:
    """An HTTP proxy in front of the web process that, for the first request matching
    `should_drop(method, path)`, lets the server answer in full and then closes the client's
    connection without a byte of the answer: the response is lost on its way back."""

    def __init__(self, target_port: int, should_drop) -> None:
        self.target_port = target_port
        self.should_drop = should_drop
        self.dropped: list[str] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            request_line = reader.readline().decode()
            if not request_line:
                return
            method, path, _ = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            while (line := reader.readline().decode()) not in ("\r\n", "\n", ""):
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
            body = reader.read(int(headers.get("Content-Length") or headers.get("content-length") or 0))
            with self._lock:
                self.seen.append((method, path, headers))
                drop = not self.dropped and self.should_drop(method, path)
                if drop:
                    self.dropped.append(path)
            upstream = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=60)
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("connection", "host")}
            upstream.request(method, path, body=body, headers=forwarded)
            response = upstream.getresponse()
            payload = response.read()
            upstream.close()
            if drop:
                return  # the server did the work; the client never hears of it
            head = [f"HTTP/1.1 {response.status} {response.reason}"]
            head += [f"{k}: {v}" for k, v in response.getheaders()
                     if k.lower() not in ("transfer-encoding", "content-length", "connection")]
            head += [f"Content-Length: {len(payload)}", "Connection: close"]
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
