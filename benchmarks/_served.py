"""`manage.py serve` (what `make run` starts) in a DATA_DIR of its own, with its output kept
and its children found by name, for the chaos soak and the supervision tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
CHILD_PATTERNS = {"worker-runs": "-Q runs", "worker-ingest": "-Q ingest", "worker-sandbox": "-Q sandbox",
                  "beat": " beat ", "web": "uvicorn", "redis": "redis-server"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the served stack ---------------------------------------------------------------------
@dataclass
class Served:
    """`manage.py serve` as `make run` starts it, in its own DATA_DIR."""

    process: subprocess.Popen
    data_dir: Path
    port: int
    api_key: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _collect(self) -> None:
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def child_pid(self, name: str) -> int | None:
        """The live pid of one of serve's children, found by its command line."""
        if name == "postgres":
            try:
                return int((self.data_dir / "postgres" / "postmaster.pid").read_text().split("\n")[0])
            except (OSError, ValueError):
                return None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            parts = stat.rsplit(")", 1)[1].split()
            if parts[0] != "Z" and int(parts[1]) == self.process.pid \
                    and CHILD_PATTERNS[name] in f" {cmdline} ":
                return int(entry.name)
        return None

    def wait_for_child(self, name: str, timeout: float = 60.0, other_than: int | None = None) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.child_pid(name)
            if pid is not None and pid != other_than:
                return pid
            time.sleep(0.1)
        raise TimeoutError(f"{name} did not come (back) within {timeout} s")

    def stop(self, timeout: float = 120.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def serve(data_dir: Path, extra_env: dict[str, str], timeout: float = 180.0) -> Served:
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"DATA_DIR": str(data_dir), "PORT": str(port), "HOST": "127.0.0.1",
                "PYTHONUNBUFFERED": "1", **extra_env})
    process = subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), "serve"], env=env,
                               cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    served = Served(process, data_dir, port)
    threading.Thread(target=served._collect, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}:\n{served.output()[-4000:]}")
        for line in served.lines:
            # The ready banner's line: "  Dev API key:    sk-...  (also in DATA_DIR/dev-api-key)".
            if line.strip().startswith("Dev API key:"):
                served.api_key = line.split("Dev API key:", 1)[1].split()[0]
                return served
        time.sleep(0.2)
    served.stop()
    raise TimeoutError(f"serve did not start within {timeout} s:\n{served.output()[-4000:]}")


def database_url(data_dir: Path) -> str:
    return (data_dir / "postgres.url").read_text().strip()
