"""How long a SIGTERMed runs worker takes to hand back its in-flight runs, and the longest gap
that leaves in their streams. One web and two runs workers (as pods, tests/support/cluster.py)
on an embedded Postgres and Redis under .data/bench/handback; RUN_DRAIN_SECONDS=0, so runs are
handed back from inside their model call at once. Each round streams RUNS runs (a word every
50 ms from the fake upstream), SIGTERMs one worker once every stream has text, and reads:

- hand-back: SIGTERM → the run's `thread.run.queued` on the client's stream (the run is
  released and enqueued);
- worker exit: SIGTERM → the worker process gone;
- content gap: the last text delta the client got from the old worker → the first text delta
  from the worker that resumed the run (what a reader of the stream sees as a stall);
- longest silence: the longest time between any two events of the stream.

Usage: .venv/bin/python benchmarks/bench_handback.py [rounds] [runs per round]"""

from __future__ import annotations

import os
import re
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2  # noqa: E402
import openai  # noqa: E402
from _stack import BASE_DIR, percentile  # noqa: E402

from assistants_project import embedded  # noqa: E402
from tests.fake_upstream import FakeUpstream, Reply  # noqa: E402
from tests.support.cluster import StreamedRun, start_cluster, stream_new_run  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 12
WORDS = 100  # 5 s an answer
DATA = BASE_DIR / ".data" / "bench" / "handback"


def silence(record: StreamedRun) -> float:
    times = [at for at, _, _ in record.events]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def _orphans(cluster) -> set[str]:
    return set(re.findall(r"recovery run=(\S+) event=orphan_requeued", cluster.log("beat", "beat")))


def warm_up(cluster, assistant_id: str) -> None:
    """Instant runs through both workers: a worker's first runs after a start pay for imports
    and the tokenizer (seconds on a loaded machine), which would skew the next round."""
    sdk = openai.OpenAI(base_url=cluster.web_url("web"), api_key=cluster.api_key)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: sdk.beta.threads.create_and_run_poll(
            assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": f"warm {i}"}]},
            poll_interval_ms=100), range(16)))


def one_round(cluster, assistant_id: str, victim: str) -> dict:
    streaming = threading.Semaphore(0)

    def note(record: StreamedRun, name: str) -> None:
        if name == "thread.message.delta" and record.names().count(name) == 1:
            streaming.release()

    http = httpx2.Client(headers={"Authorization": f"Bearer {cluster.api_key}",
                                  "OpenAI-Beta": "assistants=v2"}, limits=httpx2.Limits(max_connections=RUNS, max_keepalive_connections=0))
    began = time.monotonic()
    with ThreadPoolExecutor(RUNS) as pool:
        futures = [pool.submit(stream_new_run, http, cluster.web_url("web"), assistant_id,
                               f"round answer {i}", note) for i in range(RUNS)]
        for _ in range(RUNS):
            if not streaming.acquire(timeout=60):
                raise RuntimeError("the runs did not all start streaming")
        # Runs the beat's orphan recovery had to take back are not hand-backs: named, not timed.
        orphans_before = _orphans(cluster)
        print(f"  all {RUNS} streaming after {time.monotonic() - began:.1f} s; SIGTERM {victim}", flush=True)
        worker = cluster.pods[victim].children.pop("worker-runs")
        signalled = time.monotonic()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        exited = time.monotonic() - signalled
        records = [future.result(timeout=120) for future in futures]
    http.close()
    bad = [r.error or r.names()[-3:] for r in records
           if r.error or not r.ended_with_done or r.last_run_event() != "thread.run.completed"]
    if bad:
        raise RuntimeError(f"streams that did not complete: {bad}")
    orphaned = _orphans(cluster) - orphans_before
    handed = [r for r in records if r.content_gap() is not None and r.run_id not in orphaned]
    handback = [r.events[r.requeued_at()][0] - signalled for r in handed]
    cluster.restart(victim, "runs")
    warm_up(cluster, assistant_id)
    return {"held": len(handed), "orphaned": len(orphaned), "exit": exited, "handback": handback,
            "gaps": [r.content_gap() for r in handed], "silences": [silence(r) for r in handed]}


def figures(label: str, values: list[float]) -> str:
    return (f"{label:>34}: p50 {statistics.median(values) * 1000:7.0f} ms, "
            f"max {max(values) * 1000:7.0f} ms  ({len(values)} samples)")


def main() -> None:
    upstream = FakeUpstream()
    upstream.set_responder(lambda body: None if "warm" in str(body["messages"]) else Reply(
        text=" ".join(f"w{i}" for i in range(WORDS)), per_chunk_delay=0.05))
    upstream.start()
    server_url = embedded.start_postgres(DATA / "postgres-host")
    cluster = start_cluster(DATA / "pods", server_url, "bench_handback",
                            {"web": ("web",), "runs-1": ("runs",), "runs-2": ("runs",),
                             "beat": ("beat",)},
                            {"LLM_BASE_URL": upstream.base_url, "LLM_API_KEY": "sk-fake",
                             "EMBEDDINGS_BACKEND": "none", "RATE_LIMITS_ENABLED": "false",
                             "RUN_DRAIN_SECONDS": "0",
                             "RUN_ORPHAN_AFTER_SECONDS": "10", "SSE_KEEPALIVE_SECONDS": "15"})
    try:
        sdk = openai.OpenAI(base_url=cluster.web_url("web"), api_key=cluster.api_key)
        assistant_id = sdk.beta.assistants.create(model="gpt-4o").id
        warm_up(cluster, assistant_id)
        rounds = []
        for index in range(ROUNDS):
            result = one_round(cluster, assistant_id, ("runs-1", "runs-2")[index % 2])
            rounds.append(result)
            print(f"round {index + 1}: {result['held']} of {RUNS} runs handed back "
                  f"({result['orphaned']} taken back by orphan recovery instead), "
                  f"last after {max(result['handback'], default=0) * 1000:.0f} ms, "
                  f"worker gone after {result['exit'] * 1000:.0f} ms, "
                  f"longest content gap {max(result['gaps'], default=0) * 1000:.0f} ms", flush=True)
        print(f"hand-back, {ROUNDS} rounds of {RUNS} streamed runs (RUN_DRAIN_SECONDS=0):")
        print(figures("SIGTERM -> run back in the queue", [v for r in rounds for v in r["handback"]]))
        print(figures("SIGTERM -> worker process gone", [r["exit"] for r in rounds]))
        print(figures("content gap in a handed-back stream", [v for r in rounds for v in r["gaps"]]))
        print(figures("longest silence in such a stream", [v for r in rounds for v in r["silences"]]))
        print(f"{'p99 content gap':>34}: {percentile([v for r in rounds for v in r['gaps']], 99) * 1000:.0f} ms")
    finally:
        cluster.stop()
        embedded.stop_postgres(DATA / "postgres-host")
        upstream.stop()


if __name__ == "__main__":
    main()
