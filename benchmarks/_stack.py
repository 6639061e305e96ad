"""A private stack (embedded Postgres/Redis, web, workers) and an instant fake upstream for
benchmarks, under .data/bench."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
os.environ["DATA_DIR"] = str(BASE_DIR / ".data" / "bench")

import warnings  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

from ops.stack import Stack  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@contextmanager
def bench_stack(extra_env: dict[str, str] | None = None):
    upstream = FakeUpstream()
    upstream.instant = True
    upstream.start()
    stack = Stack(data_dir=Path(os.environ["DATA_DIR"]), port=_free_port(),
                  log_dir=Path(os.environ["DATA_DIR"]) / "logs", with_beat=False,
                  extra_env={"LLM_BASE_URL": upstream.base_url, "LLM_API_KEY": "sk-fake",
                             "LOG_LEVEL": "WARNING", "EMBEDDINGS_BACKEND": "none",
                             **(extra_env or {})})
    try:
        stack.start_services()
        stack.manage("migrate", "--noinput", "-v", "0")
        stack.start_all()
        stack.wait_until_serving()
        output = subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), "create_api_key", "--project", "bench"],
            env=stack.env, cwd=BASE_DIR, check=True, text=True, capture_output=True).stdout
        key = output.strip().splitlines()[-1]
        yield stack, upstream, f"http://{stack.host}:{stack.port}/v1", key
    finally:
        stack.stop()
        upstream.stop()
