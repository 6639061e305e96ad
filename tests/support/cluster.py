"""Processes started as Kubernetes starts them, on one machine: several "pods" on one Postgres
database and one Redis. Each pod is a Stack with a metrics directory of its own, as a pod's
emptyDir is, so a scrape of a pod's web or worker shows that pod's processes only, and a
deployment's figure is the sum over its pods, as Prometheus would add them up.

Used by tests/test_rollout.py and benchmarks/bench_handback.py."""

from __future__ import annotations

import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ops.stack import Stack

# What each pod runs: "web", a queue's worker ("runs", "ingest", "sandbox") or "beat".
Layout = dict[str, tuple[str, ...]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_database(server_url: str, name: str) -> str:
    """An empty database `name` on the Postgres server of `server_url`."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@dataclass
class Cluster:
    pods: dict[str, Stack]
    api_key: str
    database_url: str
    redis_url: str
    base_dir: Path
    # The first pod owns the Redis; it is stopped last.
    order: list[str] = field(default_factory=list)
    # Where each (pod, process) log stood when the process was last started.
    marks: dict[tuple[str, str], int] = field(default_factory=dict)

    def web_url(self, pod: str) -> str:
        stack = self.pods[pod]
        return f"http://{stack.host}:{stack.port}/v1"

    def metrics_url(self, pod: str, child: str) -> str:
        stack = self.pods[pod]
        if child == "web":
            return f"http://{stack.host}:{stack.port}/metrics"
        return f"http://{stack.host}:{stack.metrics_ports[child]}/metrics"

    def log(self, pod: str, child: str) -> str:
        path = self.pods[pod].log_dir / f"{child}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, pod: str, what: str) -> None:
        """Start (or start again) one of a pod's processes, as a replacement pod would be."""
        stack = self.pods[pod]
        if what == "web":
            stack.start_web()
        elif what == "beat":
            stack.start_beat()
        else:
            stack.start_worker(what)

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Every web answers, and every worker consumes (its log says `ready.` since it started;
        so workers log at INFO)."""
        deadline = time.monotonic() + timeout
        for stack in self.pods.values():
            if "web" in stack.children:
                stack.wait_until_serving(timeout=max(1.0, deadline - time.monotonic()))
        for name, stack in self.pods.items():
            for child in [c for c in stack.children if c.startswith("worker-")]:
                while b" ready." not in self._log_bytes(name, child)[self.marks.get((name, child), 0):]:
                    assert stack.children[child].poll() is None, f"{name}/{child} exited"
                    assert time.monotonic() < deadline, f"{name}/{child} did not become ready"
                    time.sleep(0.2)

    def _log_bytes(self, pod: str, child: str) -> bytes:
        path = self.pods[pod].log_dir / f"{child}.log"
        return path.read_bytes() if path.exists() else b""

    def restart(self, pod: str, what: str) -> None:
        """Start a process that was stopped again (a replacement), and wait until it serves."""
        child = what if what in ("web", "beat") else f"worker-{what}"
        self.marks[(pod, child)] = len(self._log_bytes(pod, child))
        self.start(pod, what)
        self.wait_until_ready()

    def stop(self) -> None:
        """All pods at once (their graceful shutdowns overlap); the Redis owner's last."""
        owner, *others = self.order
        if others:
            with ThreadPoolExecutor(len(others)) as pool:
                list(pool.map(lambda name: self.pods[name].stop(), others))
        self.pods[owner].stop()


def start_cluster(base_dir: Path, server_url: str, name: str, layout: Layout,
                  env: dict[str, str]) -> Cluster:
    """Pods of `layout` on a fresh database `name` of the Postgres at `server_url` and on the
    first pod's own embedded Redis."""
    shutil.rmtree(base_dir, ignore_errors=True)  # an old Redis file would replay old tasks
    database_url = fresh_database(server_url, name)
    common = {"DJANGO_SETTINGS_MODULE": "assistants_project.settings",
              "DATABASE_URL": database_url, **env}
    pods: dict[str, Stack] = {}
    order = list(layout)
    redis_url = ""
    for pod in order:
        stack = Stack(data_dir=base_dir / pod, port=free_port(), log_dir=base_dir / "logs" / pod,
                      with_beat=False, extra_env={**common, "REDIS_URL": redis_url})
        stack.start_services()  # the first pod's empty REDIS_URL starts its own Redis
        redis_url = redis_url or stack.env["REDIS_URL"]
        pods[pod] = stack
    first = pods[order[0]]
    first.manage("migrate", "--noinput", "-v", "0")
    key = first.manage("create_api_key", "--project", name, capture=True).strip().splitlines()[-1]
    cluster = Cluster(pods=pods, api_key=key, database_url=database_url, redis_url=redis_url,
                      base_dir=base_dir, order=order)
    for pod, processes in layout.items():
        for what in processes:
            cluster.start(pod, what)
    try:
        cluster.wait_until_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass
class StreamedRun:
    """One streamed run as the client read it: each event (and comment) with when it arrived."""
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, name, data)
    comments: list[str] = field(default_factory=list)
    run_id: str = ""
    thread_id: str = ""
    error: str = ""

    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]

    @property
    def ended_with_done(self) -> bool:
        return bool(self.events) and self.events[-1][1] == "done"

    def last_run_event(self) -> str:
        return next((name for _, name, _ in reversed(self.events) if name.startswith("thread.run.")
                     and not name.startswith("thread.run.step.")), "")

    def requeued_at(self) -> int | None:
        """Index of the `thread.run.queued` that took the run back after it had started."""
        started = False
        for index, (_, name, _) in enumerate(self.events):
            if name == "thread.run.in_progress":
                started = True
            elif name == "thread.run.queued" and started:
                return index
        return None

    def content_gap(self) -> float | None:
        """For a run taken back after it started: the last text delta before that → the first
        text delta after it (the stall a reader of the stream sees)."""
        requeued = self.requeued_at()
        if requeued is None:
            return None
        before = [at for at, name, _ in self.events[:requeued] if name == "thread.message.delta"]
        after = [at for at, name, _ in self.events[requeued:] if name == "thread.message.delta"]
        return after[0] - before[-1] if before and after else None


def stream_new_run(http, base_url: str, assistant_id: str, content: str,
                   on_event=None) -> StreamedRun:
    """POST /threads/runs with `stream: true` and read the stream to its end, recording it."""
    import json

    record = StreamedRun()
    body = {"assistant_id": assistant_id, "stream": True,
            "thread": {"messages": [{"role": "user", "content": content}]}}
    try:
        with http.stream("POST", f"{base_url}/threads/runs", json=body, timeout=120) as response:
            if response.status_code != 200:
                record.error = f"HTTP {response.status_code}: {response.read()[:300]!r}"
                return record
            name, data = "", []
            for line in response.iter_lines():
                if line.startswith(":"):
                    record.comments.append(line[1:].strip())
                elif line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: "):
                    data.append(line[len("data: "):])
                elif not line and name:
                    payload = "\n".join(data)
                    record.events.append((time.monotonic(), name, payload))
                    if name == "thread.run.created":
                        created = json.loads(payload)
                        record.run_id, record.thread_id = created["id"], created["thread_id"]
                    if on_event is not None:
                        on_event(record, name)
                    name, data = "", []
    except Exception as error:  # noqa: BLE001 (a cut stream is what the caller checks for)
        record.error = f"{type(error).__name__}: {error}"
    return record
