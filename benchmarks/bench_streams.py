"""Open SSE streams cost other requests nothing: p50 and p99 of GET /v1/assistants with no
stream open, then while 200 SSE streams are open against a slow upstream (a word every half
second). The web process has 20 pooled database connections; an open stream holds none."""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import bench_stack, percentile  # noqa: E402

STREAMS = 200
SAMPLES = 300
SLOW_ANSWER = " ".join(f"word{i}" for i in range(400))  # 200 s at 0.5 s a word


def list_latencies(client, samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        client.beta.assistants.list(limit=20)
        timings.append(time.perf_counter() - started)
    return timings


def summary(label: str, timings: list[float]) -> str:
    return (f"{label}: p50 {statistics.median(timings) * 1000:.1f} ms, "
            f"p99 {percentile(timings, 99) * 1000:.1f} ms ({len(timings)} requests)")


class OpenStreams:
    """STREAMS streamed runs, read on one asyncio loop in a thread of their own, so the bench's
    own client does not compete with 200 reader threads."""

    def __init__(self, api_base: str, key: str, assistant_id: str, thread_ids: list[str]) -> None:
        self.api_base, self.key, self.assistant_id, self.thread_ids = api_base, key, assistant_id, thread_ids
        self.opened = 0
        self.open_now = 0
        self.failed = 0
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    async def _one(self, http, thread_id: str) -> None:
        body = {"assistant_id": self.assistant_id, "stream": True}
        try:
            async with http.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
                if response.status_code != 200:
                    self.failed += 1
                    return
                self.opened += 1
                self.open_now += 1
                try:
                    async for _ in response.aiter_bytes():
                        if self._stop.is_set():
                            return
                finally:
                    self.open_now -= 1
        except Exception:  # noqa: BLE001 (a bench counts failures; it does not stop on them)
            self.failed += 1

    async def _main(self) -> None:
        import httpx2

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        limits = httpx2.Limits(max_connections=STREAMS + 10, max_keepalive_connections=0)
        headers = {"Authorization": f"Bearer {self.key}", "OpenAI-Beta": "assistants=v2"}
        async with httpx2.AsyncClient(base_url=self.api_base, headers=headers, limits=limits,
                                      timeout=httpx2.Timeout(120, connect=30)) as http:
            tasks = [asyncio.create_task(self._one(http, thread_id)) for thread_id in self.thread_ids]
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    import openai

    from tests.fake_upstream import Reply

    # What is measured is the cost of open streams, not the per-project rate limits.
    with bench_stack({"RATE_LIMITS_ENABLED": "false"}) as (_stack, upstream, api_base, key):
        upstream.instant = False
        upstream.set_responder(lambda request: Reply(text=SLOW_ANSWER, per_chunk_delay=0.5))
        client = openai.OpenAI(base_url=api_base, api_key=key, max_retries=0, timeout=60)
        assistant = client.beta.assistants.create(model="gpt-4o")
        list_latencies(client, 20)  # warm up
        print(summary("GET /v1/assistants, no stream open", list_latencies(client, SAMPLES)))

        threads = [client.beta.threads.create().id for _ in range(STREAMS)]
        for thread_id in threads:
            client.beta.threads.messages.create(thread_id, role="user", content="talk slowly")
        streams = OpenStreams(api_base, key, assistant.id, threads)
        started = time.perf_counter()
        streams.start()
        while streams.opened + streams.failed < STREAMS:
            if time.perf_counter() - started > 120:
                break
            time.sleep(0.2)
        print(f"{streams.opened} SSE streams open after {time.perf_counter() - started:.1f} s "
              f"({streams.failed} failed)")
        with_streams = list_latencies(client, SAMPLES)
        print(summary(f"GET /v1/assistants, {streams.open_now} SSE streams open", with_streams))
        print(f"streams still open at the end: {streams.open_now}")
        streams.stop()


if __name__ == "__main__":
    main()
