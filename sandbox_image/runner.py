"""The sandbox's runner: PID 1 of a Code Interpreter container, and the only process that speaks
the protocol. User code runs in a long-lived kernel child (kernel.py) that keeps one namespace
across executions, like a notebook. The kernel's stdout and stderr are pipes the runner reads
into bounded buffers; files and figures are found and capped by the runner, so nothing user code
prints or writes can forge a reply or make the host do unbounded work.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
  {"id", "op": "exec", "code", "timeout", "output_limit", "max_files", "max_bytes"}
      -> {"id", "stdout", "stderr", "error": null | {"name", "value", "traceback"},
          "images": [{"path", "size"}], "files": [{"path", "size"}], "duration_ms", "restarted"}
  {"id", "op": "write", "path", "offset", "data": base64}   -> {"id", "ok"} | {"id", "error"}
  {"id", "op": "read", "path", "offset", "size"}            -> {"id", "data": base64, "eof"}
  {"id", "op": "remove", "path"}                            -> {"id", "ok"}
  {"id", "op": "ping"}                                      -> {"id", "pong": true}
"""

import base64
import contextlib
import ctypes
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

DATA_DIR = "/mnt/data"
FIGURES_ROOT = "/tmp/.figures"
KERNEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel.py")
READ_CHUNK_MAX = 1 << 20
RESULT_LINE_MAX = 1 << 20
GRACE_SECONDS = 10.0
PR_SET_DUMPABLE = 4


def _protect_self():
    """Non-dumpable: processes of the same uid (the kernel, user code) can neither open
    /proc/1/fd/* (the protocol channel) nor ptrace this process."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


class Capture:
    """Keeps the head and the tail of a stream (enough bytes for `limit` characters of text)
    and counts what falls between: memory stays bounded whatever the code prints."""

    def __init__(self, limit):
        self.limit = max(int(limit), 2)
        self.keep = 4 * self.limit  # a character is at most 4 bytes of UTF-8
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data):
        self.total += len(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.keep:
                del self.tail[:len(self.tail) - self.keep]

    def text(self):
        if self.total == len(self.head) + len(self.tail):
            return truncate_middle((self.head + self.tail).decode("utf-8", errors="replace"), self.limit)
        half = self.limit // 2
        head = self.head.decode("utf-8", errors="replace")[:half]
        tail = self.tail[-self.keep:].decode("utf-8", errors="replace")[-half:]
        cut = self.total - len(head.encode()) - len(tail.encode())
        return f"{head}\n[... {cut} bytes of output cut ...]\n{tail}"


def truncate_middle(text, limit):
    """At most `limit` characters (plus the marker): the head and the tail, the cut marked."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters of output cut ...]\n{text[-half:]}"


class Kernel:
    def __init__(self):
        self.process = None
        self.start()

    def start(self):
        cmd_read, self.cmd = os.pipe()
        self.results, result_write = os.pipe()
        env = dict(os.environ, KERNEL_CMD_FD=str(cmd_read), KERNEL_RESULT_FD=str(result_write))
        self.process = subprocess.Popen(
            [sys.executable, "-u", KERNEL], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=(cmd_read, result_write), env=env, cwd=DATA_DIR,
            start_new_session=True)
        os.close(cmd_read)
        os.close(result_write)
        for fd in (self.process.stdout.fileno(), self.process.stderr.fileno(), self.results):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def stop(self):
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for fd in (self.cmd, self.results):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.process.stdout.close()
        self.process.stderr.close()

    def restart(self):
        self.stop()
        self.start()


def _snapshot():
    seen = {}
    for root, _dirs, names in os.walk(DATA_DIR):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.lstat(path)
            except OSError:
                continue
            if not os.path.islink(path):
                seen[path] = (stat.st_size, stat.st_mtime_ns)
    return seen


def _drain(fd, capture):
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            return
        if not data:
            return
        capture.add(data)


def _result_error(raw):
    """What the kernel said went wrong. User code can write here too, so only the expected
    shape is kept, and only strings, and short."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    error = value.get("error") if isinstance(value, dict) else None
    if not isinstance(error, dict):
        return None
    return {key: truncate_middle(str(error.get(key, "")), 20_000) for key in ("name", "value", "traceback")}


def execute(kernel, request):
    started = time.monotonic()
    timeout = float(request.get("timeout") or 30)
    limit = int(request.get("output_limit") or 20_000)
    max_files = int(request.get("max_files") or 20)
    max_bytes = int(request.get("max_bytes") or 100 * 1024 * 1024)
    shutil.rmtree(FIGURES_ROOT, ignore_errors=True)
    figures = os.path.join(FIGURES_ROOT, str(request.get("id") or "run"))
    os.makedirs(figures, exist_ok=True)
    before = _snapshot()
    # Whatever the kernel printed between executions (background threads) is not this one's.
    _drain(kernel.process.stdout.fileno(), Capture(1))
    _drain(kernel.process.stderr.fileno(), Capture(1))
    out, err = Capture(limit), Capture(limit)
    error, restarted, raw = None, False, bytearray()
    message = json.dumps({"code": request.get("code", ""), "timeout": timeout, "figures": figures})
    try:
        os.write(kernel.cmd, message.encode() + b"\n")
    except OSError:
        kernel.restart()
        os.write(kernel.cmd, message.encode() + b"\n")
    deadline = started + timeout + GRACE_SECONDS
    stdout_fd, stderr_fd = kernel.process.stdout.fileno(), kernel.process.stderr.fileno()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            kernel.restart()
            restarted = True
            error = {"name": "TimeoutError", "traceback": "", "value": (
                f"Execution exceeded the {timeout:g} s limit and could not be interrupted; "
                "the Python kernel was restarted and its state was lost.")}
            break
        ready, _, _ = select.select([stdout_fd, stderr_fd, kernel.results], [], [], remaining)
        if stdout_fd in ready:
            _drain(stdout_fd, out)
        if stderr_fd in ready:
            _drain(stderr_fd, err)
        if kernel.results in ready:
            try:
                chunk = os.read(kernel.results, 1 << 16)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                _drain(stdout_fd, out)
                _drain(stderr_fd, err)
                kernel.restart()
                restarted = True
                error = {"name": "KernelRestarted", "traceback": "", "value": (
                    "The Python kernel stopped (it hit a resource limit, such as memory, or "
                    "exited) and was restarted; its state was lost.")}
                break
            if chunk:
                raw += chunk
                if b"\n" in raw or len(raw) > RESULT_LINE_MAX:
                    _drain(stdout_fd, out)
                    _drain(stderr_fd, err)
                    error = _result_error(bytes(raw.split(b"\n", 1)[0][:RESULT_LINE_MAX]))
                    break
    notices = []
    images = _collect([os.path.join(figures, name) for name in sorted(os.listdir(figures))]
                      if os.path.isdir(figures) else [], max_files, max_bytes, notices, "figures")
    after = _snapshot()
    changed = [path for path, stat in sorted(after.items()) if before.get(path) != stat]
    used = sum(image["size"] for image in images)
    files = _collect(changed, max_files - len(images), max_bytes - used, notices, "files")
    stderr = err.text()
    if notices:
        stderr = (stderr + "\n" if stderr else "") + "\n".join(notices)
    return {"id": request.get("id"), "stdout": out.text(), "stderr": stderr, "error": error,
            "images": images, "files": files, "restarted": restarted,
            "duration_ms": round((time.monotonic() - started) * 1000, 2)}


def _collect(paths, max_count, max_bytes, notices, kind):
    kept, skipped = [], 0
    used = 0
    for path in paths:
        try:
            size = os.lstat(path).st_size
        except OSError:
            continue
        if len(kept) >= max(max_count, 0) or used + size > max_bytes:
            skipped += 1
            continue
        kept.append({"path": path, "size": size})
        used += size
    if skipped:
        notices.append(f"[{skipped} more {kind} not returned: at most {max(max_count, 0)} files "
                       f"and {max_bytes} bytes come back from one execution]")
    return kept


def _safe_path(path, allow_figures=False):
    real = os.path.realpath(str(path))
    roots = [DATA_DIR] + ([FIGURES_ROOT] if allow_figures else [])
    if not any(real == root or real.startswith(root + "/") for root in roots):
        raise PermissionError(f"{path} is outside {DATA_DIR}")
    return real


def file_op(request):
    op = request["op"]
    if op == "write":
        path = _safe_path(request["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        offset = int(request.get("offset") or 0)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if offset == 0 else 0)
        fd = os.open(path, flags, 0o644)
        try:
            os.pwrite(fd, base64.b64decode(request.get("data") or ""), offset)
        finally:
            os.close(fd)
        return {"ok": True}
    if op == "read":
        path = _safe_path(request["path"], allow_figures=True)
        size = min(int(request.get("size") or READ_CHUNK_MAX), READ_CHUNK_MAX)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            data = os.pread(fd, size, int(request.get("offset") or 0))
        finally:
            os.close(fd)
        return {"data": base64.b64encode(data).decode(), "eof": len(data) < size}
    if op == "remove":
        path = _safe_path(request["path"])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return {"ok": True}
    raise ValueError(f"unknown op {op!r}")


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    _protect_self()
    os.makedirs(DATA_DIR, exist_ok=True)
    os.chdir(DATA_DIR)
    kernel = Kernel()
    protocol = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError:
            continue
        op = request.get("op") or "exec"
        try:
            if op == "ping":
                reply = {"pong": True}
            elif op == "exec":
                reply = execute(kernel, request)
            else:
                reply = file_op(request)
        except (OSError, ValueError, KeyError) as exc:
            reply = {"error": {"name": type(exc).__name__, "value": str(exc), "traceback": ""}}
        reply["id"] = request.get("id")
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()
        if kernel.process.poll() is not None:
            kernel.restart()
        _reap()


if __name__ == "__main__":
    main()
