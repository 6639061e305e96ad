"""Parsing and chunking a user's file in a child process (`workers.ingest.child`) with memory
(RLIMIT_AS), CPU-time and wall-clock limits. Whatever the file does to its parser, this process
gets back chunks or a precise error, and lives on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workers.ingest.chunking import TextPiece

BASE_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ParseLimits:
    memory_bytes: int
    cpu_seconds: int
    wall_seconds: float
    zip_max_bytes: int
    max_tokens: int


class LimitExceeded(Exception):
    """The file hit a limit or broke its parser; the message says which, for `last_error`."""

    def __init__(self, message: str, code: str = "invalid_file") -> None:
        super().__init__(message)
        self.code = code


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # glibc reserves 64 MB of address space per thread arena; under RLIMIT_AS that is waste.
    env["MALLOC_ARENA_MAX"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), env.get("PYTHONPATH")]))
    return env


def parse_in_child(path: str, filename: str, max_chunk_size_tokens: int, chunk_overlap_tokens: int,
                   limits: ParseLimits) -> list[TextPiece]:
    job = {"path": path, "filename": filename, "max_chunk_size_tokens": max_chunk_size_tokens,
           "chunk_overlap_tokens": chunk_overlap_tokens, "memory_bytes": limits.memory_bytes,
           "cpu_seconds": limits.cpu_seconds, "zip_max_bytes": limits.zip_max_bytes,
           "max_tokens": limits.max_tokens}
    # A parser may warn without end: its stderr goes to a file, of which only the tail is read.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.ingest.child"], cwd=BASE_DIR, env=_child_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, start_new_session=True)
        try:
            out, _ = process.communicate(json.dumps(job).encode(), timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise LimitExceeded(
                f"Parsing the file took longer than the {limits.wall_seconds:g} s limit.") from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        errors.seek(max(0, errors.seek(0, os.SEEK_END) - 4096))
        err = errors.read()
    return _result(process.returncode, out, err, limits)


def _result(returncode: int, out: bytes, err: bytes, limits: ParseLimits) -> list[TextPiece]:
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise LimitExceeded(f"Parsing the file used more than the {limits.cpu_seconds} s "
                            "CPU-time limit.")
    try:
        result = json.loads(out) if out else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {returncode}"]
        if "MemoryError" in tail[0]:
            raise LimitExceeded(_memory_message(limits))
        raise LimitExceeded(f"The file's parser stopped unexpectedly ({tail[0][:200]}).",
                            code="server_error")
    if "error" in result:
        error = result["error"]
        if error["message"] == "memory":
            raise LimitExceeded(_memory_message(limits))
        raise LimitExceeded(error["message"], code=error["code"])
    return [TextPiece(*item) for item in result["chunks"]]


def _memory_message(limits: ParseLimits) -> str:
    return (f"Parsing the file needed more than the {limits.memory_bytes}-byte memory limit "
            f"({limits.memory_bytes // (1 << 20)} MiB).")
