"""What the session logic (manager.py) needs from whatever runs sandboxes: start one under the
configured limits, tell whether it is alive, talk to its runner (execute, put and get files),
remove it, and list this deployment's. Docker implements it (docker_backend.py); a backend
that starts pods implements the same methods and is picked by SANDBOX_BACKEND, with no change
to the manager."""

from __future__ import annotations

import abc
import base64
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from workers.sandbox.manager import SandboxConfig

# Files cross to the runner in pieces of this size: a 512 MB input never becomes one
# message, and a failed piece leaves the session as it was.
TRANSFER_CHUNK_BYTES = 1 << 20

BACKENDS = {"docker": "workers.sandbox.docker_backend.DockerBackend"}


class KernelGone(Exception):
    """The sandbox stopped answering (killed by a limit, or removed)."""


@dataclass(frozen=True)
class Listed:
    """A sandbox of this deployment as the backend sees it."""
    id: str
    created_at: float  # unix seconds; 0.0 when the backend cannot tell


class SandboxConnection(abc.ABC):
    """One open line to one sandbox's runner. Raises KernelGone when the sandbox went away and
    TimeoutError when it did not answer in time."""

    @abc.abstractmethod
    def execute(self, request: dict, timeout: float) -> dict:
        """Run code: `request` holds code, timeout and output limits; the reply holds stdout,
        stderr, error, images and files (paths of what changed), duration_ms, restarted."""

    @abc.abstractmethod
    def put_file(self, path: str, stream: BinaryIO) -> None:
        """Write `stream` to `path`; a file that cannot be written whole is removed again and
        RuntimeError is raised."""

    @abc.abstractmethod
    def get_file(self, path: str, max_bytes: int) -> bytes:
        """FileNotFoundError when it is missing, ValueError when longer than `max_bytes`."""

    @abc.abstractmethod
    def remove_file(self, path: str) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class SandboxBackend(abc.ABC):
    @abc.abstractmethod
    def start(self, config: SandboxConfig) -> str:
        """A new sandbox under `config`'s image and limits: no network, no privileges, a
        read-only root with size-limited /mnt/data and /tmp; labelled with config.namespace."""

    @abc.abstractmethod
    def alive(self, sandbox_id: str) -> bool: ...

    @abc.abstractmethod
    def connect(self, sandbox_id: str) -> SandboxConnection: ...

    @abc.abstractmethod
    def remove(self, sandbox_id: str) -> None:
        """Gone or being removed by someone else is not an error."""

    @abc.abstractmethod
    def list(self, namespace: str) -> list[Listed]:
        """Every sandbox of `namespace`, running or not."""


class RunnerConnection(SandboxConnection):
    """The runner's protocol (sandbox_image/runner.py: one JSON request per line, replies
    matched by id), over any transport that can send and receive its lines."""

    @abc.abstractmethod
    def request(self, message: dict, timeout: float) -> dict: ...

    def execute(self, request: dict, timeout: float) -> dict:
        return self.request({"op": "exec", **request}, timeout)

    def put_file(self, path: str, stream: BinaryIO) -> None:
        offset = 0
        while True:
            chunk = stream.read(TRANSFER_CHUNK_BYTES)
            reply = self.request({"op": "write", "path": path, "offset": offset,
                                  "data": base64.b64encode(chunk).decode()}, 60)
            if reply.get("error"):
                self.remove_file(path)
                raise RuntimeError(f"could not place {path}: {reply['error']['value']}")
            offset += len(chunk)
            if len(chunk) < TRANSFER_CHUNK_BYTES:
                return

    def get_file(self, path: str, max_bytes: int) -> bytes:
        data = bytearray()
        while len(data) < max_bytes:
            reply = self.request({"op": "read", "path": path, "offset": len(data),
                                  "size": TRANSFER_CHUNK_BYTES}, 60)
            if reply.get("error"):
                raise FileNotFoundError(f"{path}: {reply['error']['value']}")
            data += base64.b64decode(reply["data"])
            if reply.get("eof"):
                return bytes(data)
        raise ValueError(f"{path} is larger than {max_bytes} bytes")

    def remove_file(self, path: str) -> None:
        self.request({"op": "remove", "path": path}, 30)


def load_backend(name: str) -> SandboxBackend:
    """`docker`, or the dotted path of a SandboxBackend class (constructed without arguments)."""
    path = BACKENDS.get(name, name)
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"SANDBOX_BACKEND must be one of {sorted(BACKENDS)} or a dotted path, not {name!r}")
    factory: Callable[[], SandboxBackend] = getattr(importlib.import_module(module_name), class_name)
    backend = factory()
    if not isinstance(backend, SandboxBackend):
        raise TypeError(f"{path} is not a SandboxBackend")
    return backend
