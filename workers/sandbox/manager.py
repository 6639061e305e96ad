"""Code Interpreter sessions: one Docker container per conversation thread, found again by any
worker process through Redis (session → container) and the Docker daemon; a warm pool of
pre-started containers; idle sessions reaped. No Django here: configuration comes in."""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field

from workers.sandbox.kernel import KernelConnection, KernelGone

logger = logging.getLogger(__name__)

LABEL = "assistants.sandbox"
LAST_USED_KEY = "sandbox:last-used"


def _session_key(session: str) -> str:
    return f"sandbox:session:{session}"


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

    def _container_for(self, session: str):
        """The session's container, reattached if it exists, else one from the warm pool (or a
        fresh one). Returns (container, created_now)."""
        known = self.redis.get(_session_key(session))
        if known:
            container = self._alive(known.decode())
            if container is not None:
                return container, False
            self._discard(known.decode())
        container = None
        while container is None:
            pooled = self.redis.spop(self.config.pool_key)
            if pooled is None:
                container = self._start_container()
                break
            container = self._alive(pooled.decode())
        self.redis.set(_session_key(session), container.id)
        self.redis.zadd(LAST_USED_KEY, {session: time.time()})
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

    # -- sessions -------------------------------------------------------------------------
    def _request(self, session: str, message: dict, timeout: float) -> tuple[dict, bool]:
        container, created = self._container_for(session)
        connection = KernelConnection(container)
        try:
            reply = connection.request(message, timeout)
        finally:
            connection.close()
        self.redis.zadd(LAST_USED_KEY, {session: time.time()})
        return reply, created

    def execute(self, session: str, code: str, timeout: float | None = None) -> ExecutionResult:
        limit = timeout or self.config.exec_timeout
        try:
            # The kernel interrupts the code at `limit`; the extra seconds cover rendering
            # figures and replying.
            reply, created = self._request(session, {"code": code, "timeout": limit}, limit + 15)
        except (KernelGone, TimeoutError) as exc:
            # A limit (memory, pids) killed the kernel, or it stopped answering: the session
            # restarts clean on the next call, and this call reports what happened.
            self.close_session(session)
            return ExecutionResult(error={
                "name": "SandboxRestarted",
                "value": "The sandbox stopped (a resource limit was hit or it stopped responding) "
                         f"and was restarted; its state was lost. ({type(exc).__name__})",
                "traceback": ""}, restarted=True)
        return ExecutionResult(
            stdout=reply.get("stdout", ""), stderr=reply.get("stderr", ""), error=reply.get("error"),
            images=[base64.b64decode(image) for image in reply.get("images", [])],
            files=reply.get("files", []), duration_ms=reply.get("duration_ms", 0.0))

    def put_file(self, session: str, name: str, data: bytes) -> str:
        """Write a file into /mnt/data through the kernel (the root filesystem is read-only
        and /mnt/data is a tmpfs, which `docker cp` cannot reach)."""
        path = f"/mnt/data/{name}"
        code = (
            "import base64 as _b64, os as _os\n"
            f"_p = {path!r}\n"
            "_os.makedirs(_os.path.dirname(_p), exist_ok=True)\n"
            f"open(_p, 'wb').write(_b64.b64decode({base64.b64encode(data).decode()!r}))\n"
            "del _b64, _os, _p"
        )
        result = self.execute(session, code, timeout=60)
        if result.error:
            raise RuntimeError(f"could not place {name}: {result.error['value']}")
        return path

    def get_file(self, session: str, path: str) -> bytes:
        reply, _ = self._request(session, {"code": (
            "import base64 as _b64\n"
            f"print(_b64.b64encode(open({path!r}, 'rb').read()).decode(), end='')\n"
            "del _b64"), "timeout": 60}, 75)
        if reply.get("error"):
            raise FileNotFoundError(path)
        return base64.b64decode(reply["stdout"])

    def container_id(self, session: str) -> str:
        container, _ = self._container_for(session)
        return container.id

    def has_session(self, session: str) -> bool:
        return bool(self.redis.exists(_session_key(session)))

    def close_session(self, session: str) -> None:
        known = self.redis.get(_session_key(session))
        self.redis.delete(_session_key(session))
        self.redis.zrem(LAST_USED_KEY, session)
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
        for container in self.docker.containers.list(
                all=True, filters={"label": f"{LABEL}={self.config.namespace}"}):
            age = time.time() - _created_at(container)
            if container.id not in known and age > 60:
                container.remove(force=True)

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


def _created_at(container) -> float:
    from datetime import datetime

    created = container.attrs.get("Created", "")
    try:
        return datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0
