"""`make run` as an orchestrator: the real `manage.py serve`, in its own DATA_DIR, restarts
what dies, keeps its queue across a Redis crash, survives a short chaos soak, and stops only
when told to or when a process keeps dying."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream, Reply

BASE_DIR = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("chaos_runs", BASE_DIR / "benchmarks" / "chaos_runs.py")
chaos_runs = importlib.util.module_from_spec(_spec)
sys.modules["chaos_runs"] = chaos_runs  # its dataclasses look their module up
_spec.loader.exec_module(chaos_runs)


@pytest.fixture(scope="module")
def soak_upstream():
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def served(soak_upstream, sandbox_image):
    data_dir = Path(os.environ["DATA_DIR"]) / "served"
    shutil.rmtree(data_dir, ignore_errors=True)
    served = chaos_runs.serve(data_dir, {**chaos_runs.chaos_env(soak_upstream.base_url),
                                         "SANDBOX_IMAGE": sandbox_image, "SANDBOX_WARM_POOL_SIZE": "1"})
    yield served
    served.stop()


@pytest.fixture
def upstream(soak_upstream):
    soak_upstream.reset()
    yield soak_upstream
    soak_upstream.reset()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def _said(served, text: str) -> bool:
    return any(text in line for line in served.lines)


def test_make_run_restarts_a_sigkilled_worker_and_the_runs_it_held_complete(served, upstream):
    client = chaos_runs.Client(served.base_url, served.api_key)
    bot = client.sdk.beta.assistants.create(model="gpt-4o")
    words = " ".join(f"w{i}" for i in range(20))
    upstream.set_responder(lambda body: Reply(text=words, per_chunk_delay=0.2))
    threads = [client.sdk.beta.threads.create(messages=[{"role": "user", "content": f"hi {i}"}])
               for i in range(4)]
    runs = [client.sdk.beta.threads.runs.create(thread_id=t.id, assistant_id=bot.id) for t in threads]
    _wait(lambda: all(client.sdk.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id).status
                      == "in_progress" for r in runs), 20, "the runs to start")
    worker = served.child_pid("worker-runs")
    os.kill(worker, signal.SIGKILL)
    _wait(lambda: _said(served, "supervisor: worker-runs exited with -9; restarting"), 10, "the restart notice")
    served.wait_for_child("worker-runs", other_than=worker)

    for run in runs:
        final = client.wait(run.thread_id, run.id, chaos_runs.TERMINAL, seconds=90)
        assert final.status == "completed"
        answers = client.sdk.beta.threads.messages.list(run.thread_id, run_id=run.id).data
        assert [m.content[0].text.value for m in answers] == [words]
    assert served.process.poll() is None  # one dead worker never stops the stack


def test_the_embedded_redis_dying_is_restarted_reported_and_keeps_its_queue(served, upstream):
    import redis

    store = redis.Redis(unix_socket_path=str(served.data_dir / "redis" / "redis.sock"))
    probe = f"probe-queue-{uuid.uuid4().hex[:6]}"
    store.lpush(probe, b"queued work")
    time.sleep(1.5)  # appendfsync everysec
    pid = served.child_pid("redis")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _said(served, "supervisor: redis exited with -9; restarting"), 10, "the notice")
    served.wait_for_child("redis", other_than=pid)
    _wait(lambda: _said(served, "supervisor: redis restarted"), 20, "the restart")
    assert store.lrange(probe, 0, -1) == [b"queued work"]

    client = chaos_runs.Client(served.base_url, served.api_key)
    bot = client.sdk.beta.assistants.create(model="gpt-4o")
    thread = client.sdk.beta.threads.create(messages=[{"role": "user", "content": "still there?"}])
    run = client.start_run(thread.id, bot.id)
    assert client.wait(thread.id, run.id, chaos_runs.TERMINAL, seconds=60).status == "completed"


def test_a_short_chaos_soak_loses_sticks_duplicates_and_double_executes_nothing(served, upstream):
    plan = chaos_runs.FaultPlan(kills=3, kill_every=(2.0, 4.0), redis_restarts=1,
                                postgres_restarts=0, web_restarts=0)
    report = chaos_runs.chaos(served, upstream, runs=100, threads=16, plan=plan, seed=11)
    chaos_runs.print_report(report)
    assert len(report["faults"]) == 4, report["faults"]
    for count in ("lost", "stuck", "duplicated", "double_executed", "silent_streams", "client_errors"):
        assert report[count] == [], (count, report[count])
    assert set(report["statuses"]) == {"completed"}, report["statuses"]


def test_a_process_that_keeps_dying_stops_the_stack_with_its_last_log_lines(served):
    killed = None
    for _ in range(5):
        pid = served.wait_for_child("beat", timeout=60, other_than=killed)
        os.kill(pid, signal.SIGKILL)
        killed = pid
        if served.process.poll() is not None:
            break
    _wait(lambda: _said(served, "supervisor: beat died 5 times within 60 s; stopping the stack"), 90,
          "the supervisor to give up")
    assert served.process.wait(timeout=240) == 1  # after stopping the rest of the stack
    assert _said(served, "  beat | ")
