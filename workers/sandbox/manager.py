"""Code Interpreter sessions: one sandbox per conversation thread, found again by any worker
process through Redis (session → sandbox id) and the backend; a warm pool of pre-started
sandboxes; idle sessions reaped; caps on live sessions. What a sandbox is (a Docker container
today) is the backend's business (backend.py): nothing here talks to Docker. No Django here:
configuration comes in."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from workers.sandbox.admission import Admission, SandboxBusy
from workers.sandbox.backend import KernelGone, SandboxBackend, SandboxConnection, load_backend

logger = logging.getLogger(__name__)

LAST_USED_KEY = "sandbox:last-used"
# A sandbox this young that nothing knows yet may be one another worker is handing out.
ORPHAN_GRACE_SECONDS = 60
HOLDING_TTL_SECONDS = 7 * 86_400


def _session_key(session: str) -> str:
    return f"sandbox:session:{session}"


def holding_key(file_id: str) -> str:
    """Which sessions hold a copy of a File, and where: {session: path}."""
    return f"sandbox:holding:{file_id}"


def placed_key(sandbox_id: str) -> str:
    """The Files already copied into one sandbox (each is placed once per sandbox)."""
    return f"sandbox:placed:{sandbox_id}"


def sandbox_error(name: str, value: str) -> dict:
    """An error in the runner's shape, for what failed around the code rather than in it."""
    return {"name": name, "value": value, "traceback": ""}


def error_outcome(name: str, value: str) -> dict:
    """The reply a run's Code Interpreter call gets when no code ran (or its result was lost)."""
    return {"stdout": "", "stderr": "", "images": [], "files": {}, "error": sandbox_error(name, value)}


@dataclass
class SandboxConfig:
    image: str = "assistants-sandbox:latest"
    memory: str = "512m"
    cpus: float = 1.0
    pids_limit: int = 128
    data_size: str = "512m"
    tmp_size: str = "256m"
    exec_timeout: float = 30.0
    idle_timeout: float = 3600.0
    warm_pool_size: int = 2
    # What one execution may send back: log characters (head and tail kept), files and bytes.
    output_limit: int = 20_000
    max_output_files: int = 20
    max_output_bytes: int = 100 * 1024 * 1024
    # Live sessions; past a cap the least recently used idle session is evicted.
    max_sessions: int = 32
    max_sessions_per_project: int = 8
    # Several deployments may share a sandbox host: each only pools, finds and reaps its own.
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def pool_key(self) -> str:
        """Pools are per configuration: a sandbox started under other limits or another
        image is never handed out."""
        import hashlib

        shape = f"{self.image}|{self.memory}|{self.cpus}|{self.pids_limit}|{self.data_size}|{self.tmp_size}"
        return f"sandbox:pool:{self.namespace}:" + hashlib.sha1(shape.encode()).hexdigest()[:12]


@dataclass
class ExecutionResult:
    stdout: str = ""
    stderr: str = ""
    error: dict | None = None
    images: list[bytes] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    duration_ms: float = 0.0
    restarted: bool = False


class SandboxManager:
    def __init__(self, config: SandboxConfig, redis, backend: SandboxBackend | str = "docker") -> None:
        self.config = config
        self.redis = redis
        self.backend = load_backend(backend) if isinstance(backend, str) else backend
        self._lock = threading.Lock()
        self.admission = Admission(redis, config.namespace)

    # -- sandboxes ------------------------------------------------------------------------
    def fill_pool(self) -> None:
        while self.redis.scard(self.config.pool_key) < self.config.warm_pool_size:
            self.redis.sadd(self.config.pool_key, self.backend.start(self.config))

    def _existing(self, session: str) -> str | None:
        known = self.redis.get(_session_key(session))
        if known:
            if self.backend.alive(known.decode()):
                return known.decode()
            self.backend.remove(known.decode())
        return None

    def _sandbox_for(self, session: str, project: str | None = None) -> str:
        """The session's sandbox, reattached if it exists, else one from the warm pool (or a
        fresh one), once the session caps leave room."""
        sandbox = self._existing(session)
        if sandbox is not None:
            return sandbox
        with self.admission.lock():
            for evicted in self.admission.make_room(session, project, self.config.max_sessions,
                                                    self.config.max_sessions_per_project):
                logger.info("sandbox session %s evicted to make room for %s", evicted, session)
                self.close_session(evicted)
            while sandbox is None:
                pooled = self.redis.spop(self.config.pool_key)
                if pooled is None:
                    sandbox = self.backend.start(self.config)
                elif self.backend.alive(pooled.decode()):
                    sandbox = pooled.decode()
            self.redis.set(_session_key(session), sandbox)
            self.redis.zadd(LAST_USED_KEY, {session: time.time()})
            self.admission.admit(session, project)
        threading.Thread(target=self._refill_quietly, daemon=True).start()
        return sandbox

    def _refill_quietly(self) -> None:
        try:
            with self._lock:
                self.fill_pool()
        except Exception as exc:  # noqa: BLE001 (the pool is an optimisation: log and carry on)
            logger.warning("could not refill the sandbox pool: %s", exc)

    # -- sessions -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connection(self, session: str, project: str | None = None) -> Iterator[SandboxConnection]:
        connection = self.backend.connect(self._sandbox_for(session, project))
        try:
            with self.admission.busy(session, self.config.exec_timeout + 120):
                yield connection
        finally:
            connection.close()
            self.redis.zadd(LAST_USED_KEY, {session: time.time()})
            self.admission.touch(session)

    def execute(self, session: str, code: str, timeout: float | None = None,
                project: str | None = None) -> ExecutionResult:
        limit = timeout or self.config.exec_timeout
        config = self.config
        try:
            with self._connection(session, project) as connection:
                # The kernel interrupts the code at `limit`, the runner kills it a little
                # later; the extra seconds cover rendering figures and replying.
                reply = connection.execute({
                    "code": code, "timeout": limit, "output_limit": config.output_limit,
                    "max_files": config.max_output_files, "max_bytes": config.max_output_bytes,
                }, limit + 30)
                images = [connection.get_file(image["path"], config.max_output_bytes)
                          for image in reply.get("images", [])[:config.max_output_files]]
        except SandboxBusy as exc:
            return ExecutionResult(error=sandbox_error("SandboxBusy", str(exc)))
        except (KernelGone, TimeoutError) as exc:
            # A limit (memory, pids) killed the whole sandbox, or it stopped answering: the
            # session restarts clean on the next call, and this call reports what happened.
            self.close_session(session)
            return ExecutionResult(error=sandbox_error(
                "SandboxRestarted", "The sandbox stopped (a resource limit was hit or it stopped "
                f"responding) and was restarted; its state was lost. ({type(exc).__name__})"),
                restarted=True)
        files = reply.get("files", [])[:max(config.max_output_files - len(images), 0)]
        return ExecutionResult(
            stdout=reply.get("stdout", ""), stderr=reply.get("stderr", ""), error=reply.get("error"),
            images=images, files=files, duration_ms=reply.get("duration_ms", 0.0),
            restarted=bool(reply.get("restarted")))

    def put_file(self, session: str, name: str, source: bytes | BinaryIO, *,
                 file_id: str | None = None, project: str | None = None) -> str:
        """Write a file into /mnt/data. A file that does not fit is removed again and the
        session carries on."""
        path = f"/mnt/data/{name}"
        stream = source if hasattr(source, "read") else io.BytesIO(source)
        with self._connection(session, project) as connection:
            connection.put_file(path, stream)
        if file_id:
            self.remember_file(session, path, file_id)
        return path

    def get_file(self, session: str, path: str, max_bytes: int | None = None) -> bytes:
        with self._connection(session) as connection:
            return connection.get_file(path, max_bytes or self.config.max_output_bytes)

    def remember_file(self, session: str, path: str, file_id: str) -> None:
        """Record that `session` holds File `file_id` at `path`, so deleting it reaches here."""
        self.redis.hset(holding_key(file_id), session, path)
        self.redis.expire(holding_key(file_id), HOLDING_TTL_SECONDS)

    def forget_file(self, file_id: str) -> list[str]:
        """A File was deleted: every live session holding a copy loses it now. Sessions whose
        sandbox is gone are only forgotten (none is started for this)."""
        removed = []
        for session, path in self.redis.hgetall(holding_key(file_id)).items():
            session, path = session.decode(), path.decode()
            sandbox = self._existing(session)
            if sandbox is None:
                continue
            try:
                connection = self.backend.connect(sandbox)
                try:
                    connection.remove_file(path)
                finally:
                    connection.close()
            except (KernelGone, TimeoutError) as exc:
                logger.warning("could not remove %s from sandbox %s: %s", path, session, exc)
                continue
            self.redis.srem(placed_key(sandbox), file_id)
            removed.append(session)
        self.redis.delete(holding_key(file_id))
        return removed

    def sandbox_id(self, session: str, project: str | None = None) -> str:
        """The session's sandbox, started (or taken from the pool) when it has none."""
        return self._sandbox_for(session, project)

    def has_session(self, session: str) -> bool:
        return bool(self.redis.exists(_session_key(session)))

    def close_session(self, session: str) -> None:
        known = self.redis.get(_session_key(session))
        self.redis.delete(_session_key(session))
        self.redis.zrem(LAST_USED_KEY, session)
        self.admission.release(session)
        if known:
            self.backend.remove(known.decode())

    def reap_idle(self, now: float | None = None) -> list[str]:
        cutoff = (now or time.time()) - self.config.idle_timeout
        idle = [s.decode() for s in self.redis.zrangebyscore(LAST_USED_KEY, 0, cutoff)]
        for session in idle:
            self.close_session(session)
        self._remove_orphans()
        return idle

    def _remove_orphans(self) -> None:
        """Sandboxes of ours that no session or pool entry knows (a crashed worker's)."""
        known: set[str] = set()
        for key in self.redis.scan_iter(match=f"sandbox:pool:{self.config.namespace}:*"):
            known |= {m.decode() for m in self.redis.smembers(key)}
        for key in self.redis.scan_iter(match="sandbox:session:*"):
            value = self.redis.get(key)
            if value:
                known.add(value.decode())
        for sandbox in self.backend.list(self.config.namespace):
            if sandbox.id not in known and time.time() - sandbox.created_at > ORPHAN_GRACE_SECONDS:
                self.backend.remove(sandbox.id)

    def shutdown(self) -> None:
        for member in self.redis.smembers(self.config.pool_key):
            self.backend.remove(member.decode())
        self.redis.delete(self.config.pool_key)

    def remove_everything(self) -> int:
        """The whole deployment is going away (the embedded `make run` stopping): every
        sandbox of this namespace goes, with the sessions and pool entries that name them."""
        ours = {sandbox.id for sandbox in self.backend.list(self.config.namespace)}
        for key in self.redis.scan_iter(match="sandbox:session:*"):
            value = self.redis.get(key)
            if value and value.decode() in ours:
                self.redis.delete(key)
                self.redis.zrem(LAST_USED_KEY, key.decode().removeprefix("sandbox:session:"))
        for key in self.redis.scan_iter(match=f"sandbox:pool:{self.config.namespace}:*"):
            self.redis.delete(key)
        for sandbox in ours:
            self.backend.remove(sandbox)
        return len(ours)

