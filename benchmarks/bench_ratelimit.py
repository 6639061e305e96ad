"""Rate limiter: the time it adds per request (the Redis decision alone, and a whole GET with
and without a limit), and the rate it lets through when clients push past the limit.
Prints p50 and p99."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import bench_stack, percentile  # noqa: E402

DECISIONS = 5000
HTTP_SAMPLES = 1500
BOUNDARY_SECONDS = 10.0


def limiter_decisions(project) -> list[float]:
    """The limiter's own cost: one check() (an EVALSHA round trip to Redis) per request."""
    from apps.core import ratelimit

    timings = []
    for _ in range(DECISIONS):
        started = time.perf_counter()
        ratelimit.check(project, "GET", "/v1/assistants")
        timings.append(time.perf_counter() - started)
    return timings


def http_gets(base: str, limited_key: str, unlimited_key: str) -> tuple[list[float], list[float]]:
    """GETs of a limited and an unlimited project, interleaved so both see the same machine."""
    import httpx2

    timings: dict[str, list[float]] = {limited_key: [], unlimited_key: []}
    with httpx2.Client(base_url=base, headers={"OpenAI-Beta": "assistants=v2"}) as http:
        for index in range(2 * (HTTP_SAMPLES + 50)):
            # Each pair's order flips, so neither project always goes first.
            key = limited_key if (index + index // 2) % 2 == 0 else unlimited_key
            started = time.perf_counter()
            answer = http.get("/assistants", headers={"Authorization": f"Bearer {key}"})
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200
            if index >= 100:
                timings[key].append(elapsed)
    return timings[limited_key], timings[unlimited_key]


def boundary(project, per_minute: int, threads: int = 4) -> tuple[float, float]:
    """Clients asking far faster than the limit, starting with the burst already spent: what
    is let through per second, against the configured limit/60."""
    from apps.core import ratelimit

    client = ratelimit.limiter().client
    seconds, micros = client.time()
    empty_at = seconds * 1000 + micros // 1000 + ratelimit.PERIOD_MS
    client.set(f"ratelimit:{project.pk}:get", empty_at, px=ratelimit.PERIOD_MS)
    stop = time.monotonic() + BOUNDARY_SECONDS
    counts = {"allowed": 0, "asked": 0}
    lock = threading.Lock()

    def hammer() -> None:
        while time.monotonic() < stop:
            try:
                ratelimit.check(project, "GET", "/v1/assistants")
                allowed = 1
            except ratelimit.RateLimitError:
                allowed = 0
            with lock:
                counts["asked"] += 1
                counts["allowed"] += allowed

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts["allowed"] / BOUNDARY_SECONDS, counts["asked"] / BOUNDARY_SECONDS


def main() -> None:
    with bench_stack({"RATE_LIMIT_GET_RPM": "1000000"}) as (stack, _upstream, base, key):
        os.environ.update(stack.env)
        import django

        django.setup()
        from apps.core.models import ApiKey, Project, hash_api_key

        project = ApiKey.objects.select_related("project").get(key_hash=hash_api_key(key)).project
        decisions = limiter_decisions(project)
        print(f"limiter decision (Redis EVALSHA), {DECISIONS} calls: "
              f"p50 {statistics.median(decisions) * 1e3:.3f} ms, p90 {percentile(decisions, 90) * 1e3:.3f} ms, "
              f"p99 {percentile(decisions, 99) * 1e3:.3f} ms (load average {os.getloadavg()[0]:.1f})")

        # Two fresh, empty projects, alike but for the limit (0: none, so no Redis call).
        keys = {}
        for name, per_minute in ((f"bench-limited-{os.getpid()}", None),
                                 (f"bench-unlimited-{os.getpid()}", 0)):
            keys[name] = stack.manage("create_api_key", "--project", name,
                                      capture=True).strip().splitlines()[-1]
            Project.objects.filter(name=name).update(rate_limit_get_rpm=per_minute)
        limited, unlimited = http_gets(base, *keys.values())
        p50 = statistics.median(limited) - statistics.median(unlimited)
        p99 = percentile(limited, 99) - percentile(unlimited, 99)
        print(f"GET /v1/assistants, {HTTP_SAMPLES} requests: limited p50 "
              f"{statistics.median(limited) * 1e3:.2f} ms / p99 {percentile(limited, 99) * 1e3:.2f} ms, "
              f"unlimited p50 {statistics.median(unlimited) * 1e3:.2f} ms / p99 "
              f"{percentile(unlimited, 99) * 1e3:.2f} ms; added p50 {p50 * 1e3:+.2f} ms, p99 {p99 * 1e3:+.2f} ms")

        for per_minute in (600, 60_000):
            Project.objects.filter(pk=project.pk).update(rate_limit_get_rpm=per_minute)
            project.refresh_from_db()
            allowed, asked = boundary(project, per_minute)
            print(f"at the boundary, limit {per_minute}/min = {per_minute / 60:.0f}/s: "
                  f"{allowed:.1f}/s let through ({allowed / (per_minute / 60) * 100:.1f}%) "
                  f"while 4 clients asked {asked:.0f}/s")


if __name__ == "__main__":
    main()
