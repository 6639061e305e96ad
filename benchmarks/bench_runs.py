"""Runs: added time-to-first-token of a streamed run versus calling the upstream directly;
completed runs per second with an instant upstream and a polling client; how soon
`create_and_poll` notices a run's end; database queries per run in the runs worker; and many
streamed runs in flight at once against a slow upstream, with an API latency probe and the runs
worker's memory per run in flight. Prints medians and p99. Rate limits are off (the bench is
one project doing far more than a project's default minute allows); everything else is
`make run`'s defaults.

BENCH_IN_FLIGHT (default 1000) and BENCH_SLOW_SECONDS (default 20) size the in-flight part;
BENCH_IN_FLIGHT=0 skips it."""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _inflight import in_flight  # noqa: E402
from _stack import bench_stack, percentile  # noqa: E402

SAMPLES = 60
THROUGHPUT_RUNS = 400
CLIENT_THREADS = 24
NOTICE_RUNS = 40


def direct_ttft(upstream_url: str) -> list[float]:
    import openai

    direct = openai.OpenAI(base_url=upstream_url, api_key="sk-fake", max_retries=0)
    timings = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        stream = direct.chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "hi"}])
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                timings.append(time.perf_counter() - started)
                break
        stream.close()
    return timings


def server_ttft(client, assistant_id: str) -> list[float]:
    timings = []
    for _ in range(SAMPLES):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        started = time.perf_counter()
        first = None
        for event in client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id,
                                                     stream=True):
            if first is None and event.event == "thread.message.delta":
                first = time.perf_counter() - started
        timings.append(first)
    return timings


def throughput(client, assistant_id: str) -> tuple[float, int]:
    threads = [client.beta.threads.create(messages=[{"role": "user", "content": f"q{i}"}]).id
               for i in range(THROUGHPUT_RUNS)]

    def create(thread_id: str) -> tuple[str, str]:
        run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
        return thread_id, run.id

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        created = list(pool.map(create, threads))
    pending = dict(created)
    while pending:
        def status(item):
            thread_id, run_id = item
            return thread_id, client.beta.threads.runs.retrieve(run_id, thread_id=thread_id).status

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            for thread_id, state in pool.map(status, list(pending.items())):
                if state in ("completed", "failed", "incomplete", "cancelled", "expired"):
                    pending.pop(thread_id)
        if pending:
            time.sleep(0.05)
    elapsed = time.perf_counter() - started
    return THROUGHPUT_RUNS / elapsed, THROUGHPUT_RUNS


def worker_queries(stack) -> tuple[float, float]:
    """(tasks, queries) the runs worker counted so far (its assistants_run_task_db_queries)."""
    import httpx2
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://{stack.host}:{stack.metrics_ports['worker-runs']}/metrics"
    totals = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(httpx2.get(url, timeout=30).text):
        for sample in family.samples:
            for kind in totals:
                if sample.name == f"assistants_run_task_db_queries_{kind}":
                    totals[kind] += sample.value
    return totals["count"], totals["sum"]


def completion_notice(client, assistant_id: str, stack) -> list[float]:
    """How long after a run's end (its thread.run.completed event, stamped by Redis) the SDK's
    create_and_poll returned, at the poll interval the server advises."""
    import redis

    events = redis.Redis.from_url(stack.env["REDIS_URL"])
    delays = []
    for _ in range(NOTICE_RUNS):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
        returned_ms = time.time() * 1000
        for entry_id, fields in events.xrange(f"run:{run.id}:events"):
            if fields[b"event"] == b"thread.run.completed":
                delays.append((returned_ms - int(entry_id.split(b"-")[0])) / 1000)
    return delays


def main() -> None:
    import openai

    with bench_stack({"RATE_LIMITS_ENABLED": "false"}) as (stack, upstream, api_base, key):
        client = openai.OpenAI(base_url=api_base, api_key=key, max_retries=0)
        assistant = client.beta.assistants.create(model="gpt-4o")
        if os.environ.get("BENCH_ONLY_IN_FLIGHT"):
            in_flight(stack, upstream, api_base, key, assistant.id)
            return
        server_ttft(client, assistant.id)[:5]  # warm up connections and caches
        direct = direct_ttft(upstream.base_url)
        served = server_ttft(client, assistant.id)
        added = [s - d for s, d in zip(sorted(served), sorted(direct), strict=True)]
        print(f"time to first token, direct upstream: p50 {statistics.median(direct) * 1000:.1f} ms, "
              f"p99 {percentile(direct, 99) * 1000:.1f} ms")
        print(f"time to first token, streamed run:    p50 {statistics.median(served) * 1000:.1f} ms, "
              f"p99 {percentile(served, 99) * 1000:.1f} ms")
        print(f"added by the server:                  p50 {statistics.median(added) * 1000:.1f} ms, "
              f"p99 {percentile(added, 99) * 1000:.1f} ms")
        tasks_before, queries_before = worker_queries(stack)
        rate, count = throughput(client, assistant.id)
        tasks_after, queries_after = worker_queries(stack)
        print(f"throughput: {count} runs completed at {rate:.1f} runs/s (instant upstream, "
              f"polling, {CLIENT_THREADS} client threads)")
        if tasks_after > tasks_before:
            print(f"database queries per run, runs worker: "
                  f"{(queries_after - queries_before) / (tasks_after - tasks_before):.2f} "
                  f"({tasks_after - tasks_before:.0f} run tasks)")
        notice = completion_notice(client, assistant.id, stack)
        print(f"create_and_poll noticed the run's end after: p50 {statistics.median(notice) * 1000:.1f} ms, "
              f"p99 {percentile(notice, 99) * 1000:.1f} ms ({len(notice)} runs)")
        in_flight(stack, upstream, api_base, key, assistant.id)


if __name__ == "__main__":
    main()
