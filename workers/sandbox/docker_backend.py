"""Sandboxes as Docker containers, reached through the attach socket (stdin/stdout of the
container's main process, the runner): no `docker exec` per statement, and files cross through
the runner because the root is read-only and /mnt/data a tmpfs, which `docker cp` cannot reach."""

from __future__ import annotations

import json
import logging
import select
import socket
import struct
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from workers.sandbox.backend import KernelGone, Listed, RunnerConnection, SandboxBackend

if TYPE_CHECKING:
    from workers.sandbox.manager import SandboxConfig

logger = logging.getLogger(__name__)

LABEL = "assistants.sandbox"
# Replies carry no file contents beyond one transfer chunk: anything longer is not our runner.
MAX_REPLY_BYTES = 8 << 20


class DockerBackend(SandboxBackend):
    def __init__(self, client=None) -> None:
        import docker

        self.client = client or docker.from_env()

    def start(self, config: SandboxConfig) -> str:
        container = self.client.containers.run(
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
        return container.id

    def _container(self, sandbox_id: str):
        import docker

        try:
            return self.client.containers.get(sandbox_id)
        except docker.errors.NotFound:
            return None

    def alive(self, sandbox_id: str) -> bool:
        container = self._container(sandbox_id)
        return container is not None and container.status in ("running", "created")

    def connect(self, sandbox_id: str) -> AttachConnection:
        import docker

        # The low-level call: no inspect first (the caller has just seen it alive).
        try:
            attached = self.client.api.attach_socket(sandbox_id, params={"stdin": 1, "stdout": 1, "stream": 1})
        except docker.errors.NotFound as exc:
            raise KernelGone(f"container {sandbox_id[:12]} is gone") from exc
        return AttachConnection(attached)

    def remove(self, sandbox_id: str) -> None:
        import docker

        try:
            self.client.containers.get(sandbox_id).remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:  # e.g. 409: another worker is removing it
            logger.info("container %s not removed here: %s", sandbox_id[:12], exc)

    def list(self, namespace: str) -> list[Listed]:
        # sparse: no inspect per container, which fails for one removed meanwhile.
        return [Listed(container.id, _created_at(container)) for container in self.client.containers.list(
            all=True, sparse=True, filters={"label": f"{LABEL}={namespace}"})]


def _created_at(container) -> float:
    created = container.attrs.get("Created", "")
    if isinstance(created, int | float):  # a sparse listing gives unix seconds
        return float(created)
    try:
        return datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0


class AttachConnection(RunnerConnection):
    """One attach socket to one container. Replies are matched by request id, so output meant
    for another attach of the same container is skipped."""

    def __init__(self, attached) -> None:
        self._attached = attached
        self.sock: socket.socket = getattr(attached, "_sock", attached)
        self.sock.setblocking(True)
        # bytearrays, consumed from the front once per read: appending to bytes copies the whole
        # buffer each time, which made 32 MB of output take seconds.
        self._frames = bytearray()
        self._lines = bytearray()
        self._scanned = 0

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            close = getattr(self._attached, "close", None)
            if close is not None:
                close()

    def _read_frames(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError()
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise TimeoutError()
        data = self.sock.recv(1 << 20)
        if not data:
            raise KernelGone("the sandbox closed its output")
        frames = self._frames
        frames += data
        # Docker multiplexes stdout/stderr without a TTY: 8-byte header (stream, size) + payload.
        position = 0
        while len(frames) - position >= 8:
            stream, size = struct.unpack_from(">BxxxL", frames, position)
            if len(frames) - position < 8 + size:
                break
            if stream == 1:
                self._lines += frames[position + 8: position + 8 + size]
            position += 8 + size
        del frames[:position]
        if len(self._lines) > MAX_REPLY_BYTES:
            raise KernelGone(f"the sandbox sent a reply longer than {MAX_REPLY_BYTES} bytes")

    def _next_line(self) -> bytes | None:
        end = self._lines.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._lines)
            return None
        line = bytes(self._lines[:end])
        del self._lines[:end + 1]
        self._scanned = 0
        return line

    def request(self, message: dict, timeout: float) -> dict:
        message = {"id": uuid.uuid4().hex, **message}
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise KernelGone(str(exc)) from exc
        deadline = time.monotonic() + timeout
        while True:
            while (line := self._next_line()) is not None:
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                if reply.get("id") == message["id"]:
                    return reply
            self._read_frames(deadline)
