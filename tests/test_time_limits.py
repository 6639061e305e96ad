"""Every Celery task has a soft and a hard time limit fitting its queue, and the limits hold on
the thread pool our workers run (which Celery itself leaves unenforced)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from tests.fake_upstream import Reply
from workers import time_limits

BASE_DIR = Path(__file__).resolve().parent.parent


def _registered_tasks() -> dict:
    import workers.tasks  # noqa: F401 (what workers and beat load)
    from assistants_project.celery import app

    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_every_registered_task_has_a_soft_and_a_hard_limit():
    tasks = _registered_tasks()
    assert len(tasks) >= 10
    for name, task in tasks.items():
        assert task.soft_time_limit and task.time_limit, f"{name} has no time limits"
        assert task.soft_time_limit < task.time_limit, name


def test_the_limits_fit_each_queue_and_never_cut_legitimate_work():
    from apps.vector_stores.services import INGESTION_DEADLINE_SECONDS
    from workers.sandbox.tool import _reply_wait_seconds

    tasks = _registered_tasks()
    run = tasks["workers.runs.tasks.execute_run"]
    # A run stops itself at expires_at; one upstream call is the longest it goes unchecked.
    assert run.soft_time_limit >= settings.RUN_EXPIRY_SECONDS + settings.LLM_TIMEOUT
    # Redis must not hand a live run to a second worker before the limit ends it.
    assert run.time_limit < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert tasks["workers.ingest.tasks.ingest_file"].soft_time_limit >= INGESTION_DEADLINE_SECONDS
    code = tasks["workers.sandbox.tasks.execute_code"]
    assert code.soft_time_limit >= _reply_wait_seconds()
    tighter = {name: task for name, task in tasks.items() if name != run.name}
    for name, task in tighter.items():
        if name != "workers.ingest.tasks.ingest_file":
            assert task.time_limit < run.soft_time_limit, name
    for name in ("workers.sandbox.file_tasks.forget_file", "workers.sandbox.tasks.close_session"):
        assert tasks[name].time_limit < code.soft_time_limit, name


def _busy(stop: threading.Event, outcome: dict) -> None:
    try:
        while not stop.is_set():
            time.sleep(0.01)
        outcome["result"] = "finished"
    except SoftTimeLimitExceeded:
        outcome["result"] = "stopped"


def _watched_thread(watchdog: time_limits.Watchdog, soft: float, hard: float):
    stop, outcome, started = threading.Event(), {}, threading.Event()

    def task() -> None:
        watchdog.watch("task-1", "probe", soft, hard)
        started.set()
        _busy(stop, outcome)
        watchdog.release("task-1")

    thread = threading.Thread(target=task, daemon=True)
    thread.start()
    started.wait(5)
    return thread, stop, outcome


def test_the_watchdog_stops_a_thread_at_its_soft_limit():
    hard_calls: list = []
    watchdog = time_limits.Watchdog(on_hard=lambda *args: hard_calls.append(args), interval=0.05)
    began = time.monotonic()
    thread, stop, outcome = _watched_thread(watchdog, soft=0.3, hard=30)
    thread.join(5)
    stop.set()
    assert outcome["result"] == "stopped"
    assert 0.3 <= time.monotonic() - began < 3
    assert hard_calls == []


def test_a_task_that_ends_in_time_is_left_alone():
    watchdog = time_limits.Watchdog(on_hard=lambda *args: None, interval=0.05)
    thread, stop, outcome = _watched_thread(watchdog, soft=1.0, hard=2.0)
    stop.set()
    thread.join(5)
    time.sleep(1.5)
    assert outcome["result"] == "finished"


HARD_LIMIT_CHILD = """
import logging, time, threading
logging.basicConfig()
from workers import time_limits
watchdog = time_limits.Watchdog(interval=0.05)
def blocked():
    watchdog.watch("task-1", "workers.probe", 0.2, 0.6)
    time.sleep(60)  # blocked in C: the soft limit's exception cannot reach it
threading.Thread(target=blocked).start()
time.sleep(30)
print("still alive")
"""


def test_a_task_blocked_past_its_hard_limit_takes_its_worker_down():
    began = time.monotonic()
    child = subprocess.run([sys.executable, "-c", HARD_LIMIT_CHILD], cwd=BASE_DIR, capture_output=True,
                           text=True, timeout=30,
                           env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"})
    assert child.returncode == time_limits.EXIT_CODE, child.stderr
    assert time.monotonic() - began < 20
    assert "still alive" not in child.stdout
    assert "workers.probe[task-1] is still running past its hard time limit" in child.stderr


def test_a_run_task_past_its_soft_limit_fails_its_run_on_the_thread_pool_worker(
        client, fake_upstream, stack, orm):
    """The real `runs` worker (-P threads) stops a run task at a soft limit given at send time,
    while its model stream is still going; the run fails instead of running on."""
    from apps.core.redis_client import get_redis
    from apps.runs import events
    from apps.runs.models import Run
    from assistants_project.celery import app

    fake_upstream.reset()
    try:
        bot = client.beta.assistants.create(model="gpt-4o")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "limit me"}])
        first = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=bot.id,
                                                         poll_interval_ms=100)
        assert first.status == "completed"
        # The same run, queued again and sent with a 1 s soft limit against a 60 s stream.
        Run.objects.filter(pk=first.id).update(status="queued", completed_at=None, started_at=None,
                                               expires_at=int(time.time()) + 600)
        get_redis().delete(events.cancel_key(first.id))  # the ended run's stop flag
        fake_upstream.enqueue(Reply(text=" ".join(["word"] * 300), per_chunk_delay=0.2))
        began = time.monotonic()
        app.send_task("workers.runs.tasks.execute_run", args=[first.id], queue="runs",
                      soft_time_limit=1, time_limit=120)
        deadline = time.monotonic() + 30
        while (run := client.beta.threads.runs.retrieve(first.id, thread_id=thread.id)).status \
                in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run.status == "failed"
        assert run.last_error.code == "server_error"
        assert time.monotonic() - began < 20
        log = (stack.log_dir / "worker-runs.log").read_text(errors="replace")
        assert "passed its soft time limit" in log
        # The worker carries on: the next run completes.
        later = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=bot.id,
                                                         poll_interval_ms=100)
        assert later.status == "completed"
    finally:
        fake_upstream.reset()


@pytest.mark.parametrize("pool, armed", [("threads", True), ("solo", True), ("prefork", False)])
def test_only_pools_that_ignore_celerys_limits_get_the_watchdog(pool, armed, monkeypatch):
    monkeypatch.setattr(time_limits, "_watchdog", None)
    time_limits.arm(pool)
    assert (time_limits._watchdog is not None) is armed
