"""Code Interpreter sessions: one Docker container per conversation thread, found again by any
worker process through Redis (session → container) and the Docker daemon; a warm pool of
pre-started containers; idle sessions reaped. No Django here: configuration comes in."""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from workers.sandbox.admission import Admission, SandboxBusy
from workers.sandbox.kernel import KernelConnection, KernelGone

logger = logging.getLogger(__name__)

LABEL = "assistants.sandbox"
LAST_USED_KEY = "sandbox:last-used"
# Files cross the attach socket in pieces of this size: a 512 MB input never becomes one
# message, and a failed piece leaves the session as it was.
TRANSFER_CHUNK_BYTES = 1 << 20
HOLDING_TTL_SECONDS = 7 * 86_400


def _session_key(session: str) -> str:
    return f"sandbox:session:{session}"


def holding_key(file_id: str) -> str:
    """Which sessions hold a copy of a File, and where: {session: path}."""
    return f"sandbox:holding:{file_id}"


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
    # Several deployments may share a Docker host: each only pools, finds and reaps its own.
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def pool_key(self) -> str:
        """Pools are per configuration: a container started under other limits or another
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
    def __init__(self, config: SandboxConfig, redis, docker_client=None) -> None:
        import docker

        self.config = config
        self.redis = redis
        self.docker = docker_client or docker.from_env()
        self._lock = threading.Lock()
        self.admission = Admission(redis, config.namespace)

    # -- containers -----------------------------------------------------------------------
    def _start_container(self):
        config = self.config
        return self.docker.containers.run(
            config.image,
            detach=True,
            stdin_open=True,
            network_mode="none",
            user="1000:1000",
            read_only=True,
            tmpfs={"/mnt/data": f"size={config.data_size},uid=1000,gid=1000,mode=0700",
                   "/tmp": f"size={config.tmp_size},mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=config.memory,
            memswap_limit=config.memory,
            nano_cpus=int(config.cpus * 1e9),
            pids_limit=config.pids_limit,
            ulimits=[{"Name": "nofile", "Soft": 256, "Hard": 256}],
            labels={LABEL: config.namespace, **config.labels},
            auto_remove=False,
        )

    def fill_pool(self) -> None:
        while self.redis.scard(self.config.pool_key) < self.config.warm_pool_size:
            container = self._start_container()
            self.redis.sadd(self.config.pool_key, container.id)

    def _alive(self, container_id: str):
        import docker

        try:
            container = self.docker.containers.get(container_id)
        except docker.errors.NotFound:
            return None
        return container if container.status in ("running", "created") else None

    def _existing(self, session: str):
        known = self.redis.get(_session_key(session))
        if known:
            container = self._alive(known.decode())
            if container is not None:
                return container
            self._discard(known.decode())
        return None

    def _container_for(self, session: str, project: str | None = None):
        """The session's container, reattached if it exists, else one from the warm pool (or a
        fresh one), once the session caps leave room. Returns (container, created_now)."""
        container = self._existing(session)
        if container is not None:
            return container, False
        with self.admission.lock():
            for evicted in self.admission.make_room(session, project, self.config.max_sessions,
                                                    self.config.max_sessions_per_project):
                logger.info("sandbox session %s evicted to make room for %s", evicted, session)
                self.close_session(evicted)
            while container is None:
                pooled = self.redis.spop(self.config.pool_key)
                if pooled is None:
                    container = self._start_container()
                    break
                container = self._alive(pooled.decode())
            self.redis.set(_session_key(session), container.id)
            self.redis.zadd(LAST_USED_KEY, {session: time.time()})
            self.admission.admit(session, project)
        threading.Thread(target=self._refill_quietly, daemon=True).start()
        return container, True

    def _refill_quietly(self) -> None:
        try:
            with self._lock:
                self.fill_pool()
        except Exception as exc:  # noqa: BLE001 (the pool is an optimisation: log and carry on)
            logger.warning("could not refill the sandbox pool: %s", exc)

    def _discard(self, container_id: str) -> None:
        import docker

        try:
            self.docker.containers.get(container_id).remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:  # e.g. 409: another worker is removing it
            logger.info("container %s not removed here: %s", container_id[:12], exc)

    # -- sessions -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connection(self, session: str, project: str | None = None) -> Iterator[KernelConnection]:
        container, _ = self._container_for(session, project)
        connection = KernelConnection(container)
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
                reply = connection.request({
                    "op": "exec", "code": code, "timeout": limit, "output_limit": config.output_limit,
                    "max_files": config.max_output_files, "max_bytes": config.max_output_bytes,
                }, limit + 30)
                images = [self._read(connection, image["path"], config.max_output_bytes)
                          for image in reply.get("images", [])[:config.max_output_files]]
        except SandboxBusy as exc:
            return ExecutionResult(error={"name": "SandboxBusy", "value": str(exc), "traceback": ""})
        except (KernelGone, TimeoutError) as exc:
            # A limit (memory, pids) killed the whole container, or it stopped answering: the
            # session restarts clean on the next call, and this call reports what happened.
            self.close_session(session)
            return ExecutionResult(error={
                "name": "SandboxRestarted",
                "value": "The sandbox stopped (a resource limit was hit or it stopped responding) "
                         f"and was restarted; its state was lost. ({type(exc).__name__})",
                "traceback": ""}, restarted=True)
        files = reply.get("files", [])[:max(config.max_output_files - len(images), 0)]
        return ExecutionResult(
            stdout=reply.get("stdout", ""), stderr=reply.get("stderr", ""), error=reply.get("error"),
            images=images, files=files, duration_ms=reply.get("duration_ms", 0.0),
            restarted=bool(reply.get("restarted")))

    def _read(self, connection: KernelConnection, path: str, max_bytes: int) -> bytes:
        data = bytearray()
        while len(data) < max_bytes:
            reply = connection.request({"op": "read", "path": path, "offset": len(data),
                                        "size": TRANSFER_CHUNK_BYTES}, 60)
            if reply.get("error"):
                raise FileNotFoundError(f"{path}: {reply['error']['value']}")
            data += base64.b64decode(reply["data"])
            if reply.get("eof"):
                return bytes(data)
        raise ValueError(f"{path} is larger than {max_bytes} bytes")

    def put_file(self, session: str, name: str, source: bytes | BinaryIO, *,
                 file_id: str | None = None, project: str | None = None) -> str:
        """Write a file into /mnt/data through the runner, one chunk per request (the root
        filesystem is read-only and /mnt/data is a tmpfs, which `docker cp` cannot reach). A
        file that does not fit is removed again and the session carries on."""
        path = f"/mnt/data/{name}"
        stream = source if hasattr(source, "read") else _BytesReader(source)
        with self._connection(session, project) as connection:
            offset = 0
            while True:
                chunk = stream.read(TRANSFER_CHUNK_BYTES)
                reply = connection.request({"op": "write", "path": path, "offset": offset,
                                            "data": base64.b64encode(chunk).decode()}, 60)
                if reply.get("error"):
                    connection.request({"op": "remove", "path": path}, 30)
                    raise RuntimeError(f"could not place {name}: {reply['error']['value']}")
                offset += len(chunk)
                if len(chunk) < TRANSFER_CHUNK_BYTES:
                    break
        if file_id:
            self.remember_file(session, path, file_id)
        return path

    def get_file(self, session: str, path: str, max_bytes: int | None = None) -> bytes:
        with self._connection(session) as connection:
            return self._read(connection, path, max_bytes or self.config.max_output_bytes)

    def remember_file(self, session: str, path: str, file_id: str) -> None:
        """Record that `session` holds File `file_id` at `path`, so deleting it reaches here."""
        self.redis.hset(holding_key(file_id), session, path)
        self.redis.expire(holding_key(file_id), HOLDING_TTL_SECONDS)

    def forget_file(self, file_id: str) -> list[str]:
        """A File was deleted: every live session holding a copy loses it now. Sessions whose
        container is gone are only forgotten (no container is started for this)."""
        removed = []
        for session, path in self.redis.hgetall(holding_key(file_id)).items():
            session, path = session.decode(), path.decode()
            container = self._existing(session)
            if container is None:
                continue
            connection = KernelConnection(container)
            try:
                connection.request({"op": "remove", "path": path}, 30)
            except (KernelGone, TimeoutError) as exc:
                logger.warning("could not remove %s from sandbox %s: %s", path, session, exc)
                continue
            finally:
                connection.close()
            self.redis.srem(f"sandbox:placed:{container.id}", file_id)
            removed.append(session)
        self.redis.delete(holding_key(file_id))
        return removed

    def container_id(self, session: str, project: str | None = None) -> str:
        container, _ = self._container_for(session, project)
        return container.id

    def has_session(self, session: str) -> bool:
        return bool(self.redis.exists(_session_key(session)))

    def close_session(self, session: str) -> None:
        known = self.redis.get(_session_key(session))
        self.redis.delete(_session_key(session))
        self.redis.zrem(LAST_USED_KEY, session)
        self.admission.release(session)
        if known:
            self._discard(known.decode())

    def reap_idle(self, now: float | None = None) -> list[str]:
        cutoff = (now or time.time()) - self.config.idle_timeout
        idle = [s.decode() for s in self.redis.zrangebyscore(LAST_USED_KEY, 0, cutoff)]
        for session in idle:
            self.close_session(session)
        self._remove_orphans()
        return idle

    def _remove_orphans(self) -> None:
        """Containers of ours that no session or pool entry knows (a crashed worker's)."""
        known: set[str] = set()
        for key in self.redis.scan_iter(match=f"sandbox:pool:{self.config.namespace}:*"):
            known |= {m.decode() for m in self.redis.smembers(key)}
        for key in self.redis.scan_iter(match="sandbox:session:*"):
            value = self.redis.get(key)
            if value:
                known.add(value.decode())
        # sparse: no inspect per container, which fails for one removed meanwhile.
        for container in self.docker.containers.list(
                all=True, sparse=True, filters={"label": f"{LABEL}={self.config.namespace}"}):
            age = time.time() - _created_at(container)
            if container.id not in known and age > 60:
                self._discard(container.id)

    def shutdown(self) -> None:
        for member in self.redis.smembers(self.config.pool_key):
            self._discard(member.decode())
        self.redis.delete(self.config.pool_key)

    def remove_everything(self) -> int:
        """The whole deployment is going away (the embedded `make run` stopping): every
        container of this namespace goes, with the sessions and pool entries that name them."""
        ours = {c.id for c in self.docker.containers.list(
            all=True, filters={"label": f"{LABEL}={self.config.namespace}"})}
        for key in self.redis.scan_iter(match="sandbox:session:*"):
            value = self.redis.get(key)
            if value and value.decode() in ours:
                self.redis.delete(key)
                self.redis.zrem(LAST_USED_KEY, key.decode().removeprefix("sandbox:session:"))
        for key in self.redis.scan_iter(match=f"sandbox:pool:{self.config.namespace}:*"):
            self.redis.delete(key)
        for container_id in ours:
            self._discard(container_id)
        return len(ours)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.offset = 0

    def read(self, size: int) -> bytes:
        chunk = self.view[self.offset: self.offset + size]
        self.offset += len(chunk)
        return bytes(chunk)


def _created_at(container) -> float:
    from datetime import datetime

    created = container.attrs.get("Created", "")
    if isinstance(created, int | float):  # a sparse listing gives unix seconds
        return float(created)
    try:
        return datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0
