"""Talks to the kernel process inside a sandbox container over the Docker attach socket
(stdin/stdout of the container's main process): no `docker exec` per statement."""

from __future__ import annotations

import json
import select
import socket
import struct
import time
import uuid

# Replies carry no file contents beyond one transfer chunk: anything longer is not our runner.
MAX_REPLY_BYTES = 8 << 20


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
