"""Talks to the kernel process inside a sandbox container over the Docker attach socket
(stdin/stdout of the container's main process): no `docker exec` per statement."""

from __future__ import annotations

import json
import select
import socket
import struct
import time
import uuid


class KernelGone(Exception):
    """The container stopped answering (killed by a limit, or removed)."""


def _raw_socket(attached) -> socket.socket:
    return getattr(attached, "_sock", attached)


class KernelConnection:
    """One attach socket to one container. Replies are matched by request id, so output meant
    for another attach of the same container is skipped."""

    def __init__(self, container) -> None:
        attached = container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        self._attached = attached
        self.sock = _raw_socket(attached)
        self.sock.setblocking(True)
        self._frames = b""
        self._lines = b""

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
        self._frames += data
        # Docker multiplexes stdout/stderr without a TTY: 8-byte header (stream, size) + payload.
        while len(self._frames) >= 8:
            stream, size = struct.unpack(">BxxxL", self._frames[:8])
            if len(self._frames) < 8 + size:
                break
            payload = self._frames[8:8 + size]
            self._frames = self._frames[8 + size:]
            if stream == 1:
                self._lines += payload

    def request(self, message: dict, timeout: float) -> dict:
        message = {"id": uuid.uuid4().hex, **message}
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise KernelGone(str(exc)) from exc
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._lines:
                line, self._lines = self._lines.split(b"\n", 1)
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                if reply.get("id") == message["id"]:
                    return reply
            self._read_frames(deadline)
