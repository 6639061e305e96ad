"""Runs: added time-to-first-token of a streamed run versus calling the upstream directly, and
completed runs per second with an instant upstream. Prints medians and p99."""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import bench_stack, percentile  # noqa: E402

SAMPLES = 60
THROUGHPUT_RUNS = 400
CLIENT_THREADS = 24


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


def main() -> None:
    import openai

    with bench_stack() as (_stack, upstream, api_base, key):
        client = openai.OpenAI(base_url=api_base, api_key=key, max_retries=0)
        assistant = client.beta.assistants.create(model="gpt-4o")
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
        rate, count = throughput(client, assistant.id)
        print(f"throughput: {count} runs completed at {rate:.1f} runs/s (instant upstream, "
              f"{CLIENT_THREADS} client threads)")


if __name__ == "__main__":
    main()
