"""The web edge (apps/core/edge.py): time to refuse a 4 GiB chunked JSON body, and the web
process's RSS before and after (aim: < 1 s, RSS unchanged). Also a 4 GiB declared
Content-Length, the same body without an API key, and a legitimate chunked body for scale."""

from __future__ import annotations

import select
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import bench_stack  # noqa: E402

GIB = 1024 ** 3
PIECE = 1024 * 1024
ROUNDS = 5


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _status_line(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"closed without a response: {data!r}")
        data += chunk
    return int(data.split(b" ", 2)[1])


def refuse(host: str, port: int, headers: dict[str, str], total: int, chunked: bool) -> tuple[int, float, int]:
    """Send up to `total` body bytes; return (status, seconds to the answer, bytes sent)."""
    piece = (f"{PIECE:x}\r\n".encode() + b"v" * PIECE + b"\r\n") if chunked else b"v" * PIECE
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(total)}
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, **framing}.items())
    with socket.create_connection((host, port), timeout=60) as sock:
        started = time.perf_counter()
        sock.sendall(f"POST /v1/threads HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        sent = 0
        sock.setblocking(False)
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(piece[: min(len(piece), total - sent + 10)])
                except (BlockingIOError, InterruptedError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        status = _status_line(sock)
        return status, time.perf_counter() - started, sent


def main() -> None:
    with bench_stack() as (stack, _upstream, base_url, key):
        import httpx2

        pids = stack.web_pids()

        def web_rss() -> tuple[float, float]:
            """(current RSS summed, the largest peak) over the web processes."""
            measured = [rss_mb(pid) for pid in pids]
            return sum(now for now, _ in measured), max(peak for _, peak in measured)

        auth = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2",
                "Content-Type": "application/json"}
        with httpx2.Client(base_url=base_url, headers=auth, timeout=60) as http:
            for _ in range(20):  # warm the process up before measuring its RSS
                http.post("/threads", json={"metadata": {"k": "v"}}).raise_for_status()
            body = b'{"metadata": {"k": "' + b"v" * 500 + b'"}}'
            timings = []
            for _ in range(20):
                started = time.perf_counter()
                http.post("/threads", content=iter([body[:10], body[10:]])).raise_for_status()
                timings.append((time.perf_counter() - started) * 1000)
        print(f"legitimate chunked JSON body (POST /v1/threads): median {statistics.median(timings):.1f} ms")
        before, _ = web_rss()
        print(f"web RSS before: {before:.1f} MB")
        for label, headers, chunked in [
            ("4 GiB chunked JSON body, authenticated", auth, True),
            ("4 GiB declared Content-Length, authenticated", auth, False),
            ("4 GiB chunked JSON body, no API key", {"Content-Type": "application/json"}, True),
        ]:
            results = [refuse(stack.host, stack.port, headers, 4 * GIB, chunked) for _ in range(ROUNDS)]
            statuses = sorted({status for status, _, _ in results})
            seconds = [elapsed for _, elapsed, _ in results]
            sent_mb = max(sent for _, _, sent in results) / 1024 / 1024
            print(f"{label}: status {statuses}, refused in median {statistics.median(seconds) * 1000:.0f} ms "
                  f"(max {max(seconds) * 1000:.0f} ms), at most {sent_mb:.0f} MB sent before the answer")
        time.sleep(1)
        after, peak = web_rss()
        print(f"web RSS after: {after:.1f} MB (change {after - before:+.1f} MB; peak over the "
              f"process's life {peak:.1f} MB)")


if __name__ == "__main__":
    main()
