"""Many streamed runs in flight at once against a slow upstream (each streams for
BENCH_SLOW_SECONDS), as a new user with a slow local model would start them: how many were in
progress at once, how many failed, the p99 of `GET /v1/assistants` probes made meanwhile, and
the runs worker's memory per run in flight."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import threading
import time
from pathlib import Path

from _stack import percentile

from tests.fake_upstream import Reply

IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "1000"))
SLOW_SECONDS = float(os.environ.get("BENCH_SLOW_SECONDS", "20"))
CHUNKS = 20
PROBE_SECONDS = 0.2
START_CONCURRENCY = 100  # client requests opening streams at once
DEADLINE_SECONDS = 3 * SLOW_SECONDS + 60


def _rss_bytes(pid: int) -> int:
    """The process's resident memory, its threads included."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _probe(api_base: str, key: str, stop, results) -> None:
    """Runs in a process of its own: in the bench's, it would wait for the bench's own Python
    (the client's streams and the fake upstream) and measure that instead of the server."""
    import httpx2

    timings: list[float] = []
    errors: list[str] = []
    with httpx2.Client(base_url=api_base, headers={"Authorization": f"Bearer {key}",
                                                   "OpenAI-Beta": "assistants=v2"}, timeout=10) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = http.get("/assistants", params={"limit": 5})
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}")
            except Exception as error:  # noqa: BLE001 (a failed probe is counted, not fatal)
                errors.append(type(error).__name__)
            timings.append(time.perf_counter() - started)
            stop.wait(PROBE_SECONDS)
    results.put((timings, errors))


async def _streams(api_base: str, key: str, assistant_id: str, count: int) -> dict:
    import httpx2
    import openai

    http = openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_connections=count + 50),
                                          timeout=SLOW_SECONDS * 10)
    client = openai.AsyncOpenAI(base_url=api_base, api_key=key, max_retries=0, http_client=http)
    # Setup, not measured: a thread create that meets a keep-alive connection the server just
    # closed is retried.
    setup = client.with_options(max_retries=3)
    gate = asyncio.Semaphore(START_CONCURRENCY)
    state = {"in_progress": 0, "peak": 0, "completed": 0, "errors": [], "peak_at": 0.0,
             "opened": [], "started": [], "last": {}}

    async def one(index: int) -> None:
        running = False
        try:
            async with gate:
                thread = await setup.beta.threads.create(
                    messages=[{"role": "user", "content": f"slow {index}"}])
            asked = time.monotonic()
            stream = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id,
                                                           stream=True)
            opened = time.monotonic()
            state["opened"].append(opened - asked)
            async for event in stream:
                state["last"][index] = (getattr(event.data, "id", ""), event.event)
                if event.event == "thread.run.in_progress" and not running:
                    running = True
                    state["started"].append(time.monotonic() - opened)
                    state["in_progress"] += 1
                    if state["in_progress"] > state["peak"]:
                        state["peak"], state["peak_at"] = state["in_progress"], time.monotonic()
                elif event.event == "thread.run.completed":
                    state["completed"] += 1
                elif event.event in ("thread.run.failed", "thread.run.expired", "error"):
                    state["errors"].append(event.event)
        except Exception as error:  # noqa: BLE001 (each failure is counted)
            cause = error.__cause__ or error.__context__
            state["errors"].append(f"{type(error).__name__}: {str(error)[:80]}"
                                   + (f" ({type(cause).__name__}: {str(cause)[:80]})" if cause else ""))
        finally:
            if running:
                state["in_progress"] -= 1

    tasks = [asyncio.ensure_future(one(index)) for index in range(count)]
    # Bounded: a server that carries few runs at once would take count / capacity × SLOW_SECONDS.
    _done, pending = await asyncio.wait(tasks, timeout=DEADLINE_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    state["unfinished"] = len(pending)
    state["unfinished_last"] = [state["last"].get(tasks.index(task)) for task in list(pending)[:3]]
    await client.close()
    return state


def in_flight(stack, upstream, api_base: str, key: str, assistant_id: str) -> None:
    if IN_FLIGHT <= 0:
        return
    upstream._server.socket.listen(4096)  # every stream connects at about the same time
    words = " ".join(f"w{i}" for i in range(CHUNKS))
    upstream.instant = False
    upstream.set_responder(lambda body: Reply(text=words, per_chunk_delay=SLOW_SECONDS / CHUNKS))
    worker = stack.children["worker-runs"].pid
    baseline = _rss_bytes(worker)
    peak_rss = [baseline]
    stop = threading.Event()
    spawn = multiprocessing.get_context("spawn")
    probe_stop, probe_results = spawn.Event(), spawn.Queue()
    prober = spawn.Process(target=_probe, args=(api_base, key, probe_stop, probe_results), daemon=True)

    def sample_memory() -> None:
        while not stop.is_set():
            peak_rss[0] = max(peak_rss[0], _rss_bytes(worker))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    prober.start()
    sampler.start()
    started = time.monotonic()
    try:
        state = asyncio.run(_streams(api_base, key, assistant_id, IN_FLIGHT))
    finally:
        stop.set()
        probe_stop.set()
        probes, probe_errors = probe_results.get(timeout=30)
        prober.join(15)
        sampler.join(5)
        upstream.set_responder(None)
        upstream.instant = True
    elapsed = time.monotonic() - started
    errors = state["errors"]
    print(f"in flight: {IN_FLIGHT} streamed runs of a {SLOW_SECONDS:.0f} s upstream: at most "
          f"{state['peak']} in progress at once ({state['peak_at'] - started:.1f} s in), "
          f"{state['completed']} completed, {len(errors)} errors, {state['unfinished']} unfinished "
          f"after {elapsed:.1f} s"
          + (f" (first: {errors[:3]})" if errors else "")
          + (f" (unfinished, last event seen: {state['unfinished_last']})" if state["unfinished"] else ""))
    for label, values in (("POST …/runs until its stream opened", state["opened"]),
                          ("stream opened until thread.run.in_progress", state["started"])):
        if values:
            print(f"  {label}: p50 {statistics.median(values) * 1000:.0f} ms, "
                  f"p99 {percentile(values, 99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")
    if probes:
        print(f"API GET /v1/assistants meanwhile: p50 {statistics.median(probes) * 1000:.1f} ms, "
              f"p99 {percentile(probes, 99) * 1000:.1f} ms ({len(probes)} probes, "
              f"{len(probe_errors)} failed)")
    if state["peak"]:
        grown = peak_rss[0] - baseline
        print(f"runs worker memory: {baseline / 2**20:.0f} MB idle, {peak_rss[0] / 2**20:.0f} MB at "
              f"peak, {grown / state['peak'] / 1024:.0f} KB per run in flight")
