"""Code Interpreter sandboxes: new session → first output (with and without the warm pool) and
warm statement round trips. Needs Docker and the sandbox image (sandbox_image/build.sh)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from _stack import percentile  # noqa: E402

NEW_SESSIONS = 20
ROUND_TRIPS = 300


def _image() -> str:
    subprocess.run(["bash", str(BASE_DIR / "sandbox_image" / "ensure_docker.sh")], check=True)
    return subprocess.run(["bash", str(BASE_DIR / "sandbox_image" / "build.sh")], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]


def _report(label: str, seconds: list[float]) -> None:
    print(f"{label}: p50 {statistics.median(seconds) * 1000:.1f} ms, "
          f"p99 {percentile(seconds, 99) * 1000:.1f} ms (n={len(seconds)})")


def main() -> None:
    import redis

    from ops.embedded import start_redis
    from workers.sandbox.manager import SandboxConfig, SandboxManager

    image = _image()
    with tempfile.TemporaryDirectory() as data_dir:
        server, url = start_redis(Path(data_dir))
        try:
            store = redis.Redis.from_url(url)
            cold = SandboxManager(SandboxConfig(image=image, warm_pool_size=0), store)
            timings = []
            for _ in range(NEW_SESSIONS):
                name = uuid.uuid4().hex
                started = time.perf_counter()
                assert cold.execute(name, "print(1)").stdout == "1\n"
                timings.append(time.perf_counter() - started)
                cold.close_session(name)
            _report("new session -> first output, no pool  ", timings)

            warm = SandboxManager(SandboxConfig(image=image, warm_pool_size=2,
                                                labels={"bench": "pool"}), store)
            timings = []
            for _ in range(NEW_SESSIONS):
                warm.fill_pool()
                time.sleep(1.0)  # the pooled kernel has finished starting, as it would in service
                name = uuid.uuid4().hex
                started = time.perf_counter()
                assert warm.execute(name, "print(1)").stdout == "1\n"
                timings.append(time.perf_counter() - started)
                warm.close_session(name)
            _report("new session -> first output, warm pool", timings)

            name = uuid.uuid4().hex
            warm.execute(name, "x = 0")
            timings = []
            for _ in range(ROUND_TRIPS):
                started = time.perf_counter()
                warm.execute(name, "x += 1")
                timings.append(time.perf_counter() - started)
            _report("warm statement round trip             ", timings)
            warm.close_session(name)
            warm.shutdown()
        finally:
            server.terminate()


if __name__ == "__main__":
    main()
