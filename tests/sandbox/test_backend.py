"""The session logic (warm pool, caps, idle expiry, file placement) reaches sandboxes only
through the backend interface, so a backend of pods can replace Docker without touching it."""

from __future__ import annotations

import ast
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import pytest

from workers.sandbox.backend import Listed, SandboxBackend, SandboxConnection, load_backend

SANDBOX_DIR = Path(__file__).resolve().parents[2] / "workers" / "sandbox"


def _docker_mentions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "docker" or "docker_backend" in a.name]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] == "docker" or "docker_backend" in module:
                found.append(module)
        elif isinstance(node, ast.Attribute) and node.attr in ("docker", "containers", "attach_socket"):
            found.append(f".{node.attr}")
        elif isinstance(node, ast.Name) and node.id == "docker":
            found.append(node.id)
    return found


def test_only_the_docker_backend_talks_to_docker():
    talkers = {path.name for path in SANDBOX_DIR.glob("*.py") if _docker_mentions(path)}
    assert talkers == {"docker_backend.py"}
    assert _docker_mentions(SANDBOX_DIR / "manager.py") == []


class Recording(SandboxBackend):
    """A backend of its own (picked by dotted path) that runs sandboxes on Docker and counts
    each call the manager makes, connections included."""

    def __init__(self) -> None:
        self.inner = load_backend("docker")
        self.calls: Counter[str] = Counter()

    def start(self, config) -> str:
        self.calls["start"] += 1
        return self.inner.start(config)

    def alive(self, sandbox_id: str) -> bool:
        self.calls["alive"] += 1
        return self.inner.alive(sandbox_id)

    def connect(self, sandbox_id: str) -> SandboxConnection:
        self.calls["connect"] += 1
        return RecordingConnection(self.inner.connect(sandbox_id), self.calls)

    def remove(self, sandbox_id: str) -> None:
        self.calls["remove"] += 1
        self.inner.remove(sandbox_id)

    def list(self, namespace: str) -> list[Listed]:
        self.calls["list"] += 1
        return self.inner.list(namespace)


class RecordingConnection(SandboxConnection):
    def __init__(self, inner: SandboxConnection, calls: Counter[str]) -> None:
        self.inner, self.calls = inner, calls

    def execute(self, request: dict, timeout: float) -> dict:
        self.calls["execute"] += 1
        return self.inner.execute(request, timeout)

    def put_file(self, path: str, stream: BinaryIO) -> None:
        self.calls["put_file"] += 1
        self.inner.put_file(path, stream)

    def get_file(self, path: str, max_bytes: int) -> bytes:
        self.calls["get_file"] += 1
        return self.inner.get_file(path, max_bytes)

    def remove_file(self, path: str) -> None:
        self.calls["remove_file"] += 1
        self.inner.remove_file(path)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.docker
def test_a_backend_is_named_by_the_setting_or_a_dotted_path():
    from workers.sandbox.docker_backend import DockerBackend

    assert isinstance(load_backend("docker"), DockerBackend)
    assert isinstance(load_backend(f"{__name__}.Recording"), Recording)
    with pytest.raises(ValueError, match="SANDBOX_BACKEND"):
        load_backend("kubernetes")
    with pytest.raises(TypeError, match="not a SandboxBackend"):
        load_backend("collections.OrderedDict")


@pytest.mark.docker
def test_the_session_logic_runs_on_any_backend(stack, manager):
    """Pool, session, files, eviction, idle expiry, orphans and shutdown, all through a
    backend the manager knows only by its dotted path."""
    import redis

    from workers.sandbox.manager import SandboxConfig, SandboxManager

    config = SandboxConfig(image=manager.config.image, exec_timeout=10, warm_pool_size=1, memory="256m",
                           max_sessions=1, idle_timeout=3600, namespace=f"recorded-{uuid.uuid4().hex[:8]}")
    recorded = SandboxManager(config, redis.Redis.from_url(stack.env["REDIS_URL"]), backend=f"{__name__}.Recording")
    calls = recorded.backend.calls
    first, second = f"rec-{uuid.uuid4().hex[:8]}", f"rec-{uuid.uuid4().hex[:8]}"
    try:
        recorded.fill_pool()
        recorded.config.warm_pool_size = 0  # no refills in the background from here on
        pooled = {m.decode() for m in recorded.redis.smembers(config.pool_key)}
        assert calls["start"] == 1 and recorded.sandbox_id(first) in pooled
        recorded.put_file(first, "in.txt", b"hello")
        result = recorded.execute(first, "print(open('/mnt/data/in.txt').read())\n"
                                         "with open('/mnt/data/out.txt', 'w') as out:\n    out.write('x')")
        assert result.stdout == "hello\n" and [f["path"] for f in result.files] == ["/mnt/data/out.txt"]
        assert recorded.get_file(first, "/mnt/data/out.txt") == b"x"
        assert {"put_file", "execute", "get_file"} <= set(calls)
        # One session at most: the second evicts the first, whose sandbox is removed.
        first_sandbox = recorded.sandbox_id(first)
        assert recorded.execute(second, "print(2)").stdout == "2\n"
        assert not recorded.has_session(first) and not recorded.backend.alive(first_sandbox)
        recorded.config.idle_timeout = 0.5
        time.sleep(1)
        assert second in recorded.reap_idle() and calls["list"] >= 1
        assert recorded.backend.list(config.namespace) == []
        assert calls["start"] == 2 and calls["remove"] >= 2
    finally:
        recorded.remove_everything()


@pytest.mark.docker
def test_the_setting_picks_the_workers_backend(stack):
    import subprocess
    import sys

    probe = "from workers.sandbox.service import get_manager; print(type(get_manager().backend).__qualname__)"
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", probe], cwd=SANDBOX_DIR.parents[1],
                            env={**stack.env, "SANDBOX_BACKEND": f"{__name__}.Recording"},
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "Recording"
