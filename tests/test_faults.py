"""Faults against the session's real stack: a Redis outage, lost messages, dead workers, stale
workers and stale sandbox tasks never lose a run, stick one or execute one twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.fake_upstream import Reply

BASE_DIR = Path(__file__).resolve().parent.parent


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def _finished(client, thread_id: str, run_id: str, timeout: float = 60.0):
    """The run once it ended; bounded, so a run that never ends fails the test, not the suite."""
    terminal = ("cancelled", "failed", "completed", "incomplete", "expired")
    return _wait(lambda: (run := client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)).status
                 in terminal and run, timeout, f"run {run_id} to end", interval=0.2)


def _log(stack, name: str) -> str:
    return (stack.log_dir / f"{name}.log").read_text(errors="replace")


def _recovery_line(stack, name: str, run_id: str, event: str) -> str | None:
    for line in _log(stack, name).splitlines():
        if f"recovery run={run_id} event={event} " in line:
            return line
    return None


def _chat_calls(upstream, marker: str) -> list[dict]:
    return [r for r in upstream.chat_requests()
            if any(marker in str(m.get("content")) for m in r.get("messages") or [])]


def _restart_redis(stack, down_seconds: float) -> None:
    redis = stack.children.pop("redis")
    os.kill(redis.pid, signal.SIGKILL)
    redis.wait()
    time.sleep(down_seconds)
    stack.restart_child("redis")


@pytest.fixture
def celery_restarted_after(stack):
    """Celery 5.7's workers and beat end ("Unrecoverable error") once the broker connection
    drops, after finishing their tasks; under `make run` the supervisor starts them again
    (tests/test_faults_soak.py). The session's stack has no supervisor: do its job."""
    yield
    names = [name for name in stack.children if name.startswith("worker-") or name == "beat"]
    for name in names:
        stack.stop_child(name)
    sizes = {name: (stack.log_dir / f"{name}.log").stat().st_size for name in names}
    for name in names:
        stack.restart_child(name)
    for name in names:
        if name.startswith("worker-"):
            _wait(lambda name=name: b" ready." in (stack.log_dir / f"{name}.log").read_bytes()[sizes[name]:],
                  60, f"{name} to be ready")


def test_a_redis_outage_while_the_run_waits_on_a_slow_embedding_gives_no_second_execution(
        client, upstream, stack, orm, celery_restarted_after):
    """The worker makes no Redis call while it waits on the embedding; only its heartbeat does,
    and that heartbeat must outlive the outage, or recovery runs the run a second time."""
    from apps.runs.models import Run
    from apps.threads.models import Message

    store = client.vector_stores.create(name="faults")
    client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("facts.txt", b"The vault code is 4242.\n" * 20))
    bot = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}],
                                        tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    marker = f"vault {uuid.uuid4().hex[:8]}"
    upstream.enqueue(Reply(tool_calls=[("file_search", '{"queries": ["vault code"]}')]),
                     Reply(text="The code is 4242."))
    upstream.embedding_delay = 3.0  # under the embeddings client timeout (LLM_TIMEOUT=4 in tests)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": marker}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=bot.id)
    def query_embedding_started() -> bool:
        asked = [r.at for r in upstream.requests if r.path.endswith("/chat/completions")
                 and marker in str(r.json)]
        return bool(asked) and any(r.path.endswith("/embeddings") and r.at > asked[0]
                                   for r in upstream.requests)

    _wait(query_embedding_started, 20, "the query embedding")
    _restart_redis(stack, down_seconds=2.0)

    final = _finished(client, thread.id, run.id)
    assert final.status == "completed", final.last_error
    time.sleep(2 * 4)  # two orphan timeouts: a wrongly resumed run would have shown by now
    assert len(_chat_calls(upstream, marker)) == 2
    row = Run.objects.get(pk=run.id)
    assert row.attempts == 1 and row.resumes == 0
    assert Message.objects.filter(run_id=run.id, role="assistant").count() == 1


def test_a_stale_worker_is_refused_and_stops_while_the_new_attempt_completes(
        client, upstream, stack, orm):
    from apps.core.redis_client import get_redis
    from apps.runs import events, state
    from apps.runs.models import Run
    from apps.threads.models import Message
    from workers.runs.tasks import _resume

    bot = client.beta.assistants.create(model="gpt-4o")
    upstream.enqueue(Reply(text="one two three four five six seven eight nine ten", per_chunk_delay=0.4),
                     Reply(text="the second attempt's answer"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=bot.id)
    _wait(lambda: Message.objects.filter(run_id=run.id).exists(), 30, "the first attempt's message")

    # A worker that no longer owns the run cannot complete it; nobody completes it unfenced.
    assert state.end_run(run.id, "completed", attempt=0) is None
    with pytest.raises(ValueError):
        state.transition(run.id, "completed")
    # What recovery does to a run whose worker it believes dead, while that worker still streams.
    _resume(Run.objects.get(pk=run.id))
    cut = get_redis().xlen(events.stream_key(run.id))

    final = _finished(client, thread.id, run.id)
    assert final.status == "completed"
    assert Run.objects.get(pk=run.id).attempts == 2
    answers = list(Message.objects.filter(run_id=run.id, role="assistant"))
    assert [m.content[0]["text"]["value"] for m in answers] == ["the second attempt's answer"]
    _wait(lambda: _recovery_line(stack, "worker-runs", run.id, "stale_worker_stopped"), 10,
          "the stale worker's stop")
    assert "attempt=1" in _recovery_line(stack, "worker-runs", run.id, "stale_worker_stopped")
    later = [fields for _, fields in get_redis().xrange(events.stream_key(run.id))][cut:]
    assert not any(b"one two" in fields[b"data"] for fields in later if fields[b"event"] == b"thread.message.delta")


def test_a_lost_enqueue_is_recovered(client, upstream, stack):
    """The run's message vanishes between commit and a worker (a failed enqueue, or Redis
    losing it): the sweeper enqueues the queued run again."""
    from apps.core.redis_client import get_redis

    bot = client.beta.assistants.create(model="gpt-4o")
    upstream.enqueue(Reply(text="recovered"))
    stack.stop_child("worker-runs")
    try:
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=bot.id)
        get_redis().delete("runs")  # the queue's list: the run's message is gone
    finally:
        stack.start_worker("runs")
    final = _finished(client, thread.id, run.id)
    assert final.status == "completed"
    assert _recovery_line(stack, "worker-runs", run.id, "queued_reenqueued")


def test_a_dead_cancelling_run_ends_cancelled(client, upstream, stack):
    from apps.runs.models import Run  # noqa: F401 (the ORM is not needed: the API tells)

    bot = client.beta.assistants.create(model="gpt-4o")
    upstream.enqueue(Reply(text="a b c d e f g h i j k l m n o p", per_chunk_delay=0.5))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=bot.id)
    _wait(lambda: client.beta.threads.messages.list(thread.id, run_id=run.id).data, 10, "the message")
    worker = stack.children.pop("worker-runs")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    try:
        cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
        assert cancelling.status == "cancelling"
    finally:
        stack.start_worker("runs")
    final = _finished(client, thread.id, run.id)
    assert final.status == "cancelled"
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete"
    assert _recovery_line(stack, "worker-runs", run.id, "dead_cancelling_cancelled")


@pytest.mark.docker
def test_a_stale_sandbox_task_is_refused(client, upstream, stack, orm):
    """A redelivered execution of a run that is over must never run in the thread's kernel."""
    from apps.core.redis_client import get_redis
    from assistants_project.celery import app
    from workers.sandbox.tasks import reply_key

    bot = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    upstream.enqueue(Reply(tool_calls=[("python", '{"code": "x = 1"}')]), Reply(text="done"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=bot.id,
                                                    poll_interval_ms=100)
    assert run.status == "completed"
    stale_call = f"call_stale{uuid.uuid4().hex[:8]}"
    app.send_task("workers.sandbox.tasks.execute_code", args=[run.id, stale_call, "print('stale ran')"],
                  queue="sandbox")
    _wait(lambda: _recovery_line(stack, "worker-sandbox", run.id, "stale_sandbox_task_refused"), 20,
          "the refusal")
    assert stale_call in _recovery_line(stack, "worker-sandbox", run.id, "stale_sandbox_task_refused")
    assert get_redis().llen(reply_key(stale_call)) == 0


def test_a_pool_concurrency_mismatch_is_refused_at_start_up(stack):
    env = {**stack.env, "DB_POOL_MAX_SIZE": "20"}
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "assistants_project", "worker", "-P", "threads",
         "-c", "32", "-Q", f"capacity-probe-{uuid.uuid4().hex[:6]}", "--without-gossip",
         "--without-mingle"],
        env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=180)
    assert worker.returncode != 0
    assert "ImproperlyConfigured" in worker.stderr and "DB_POOL_MAX_SIZE" in worker.stderr


def test_docker_compose_runs_workers_that_fit_their_database_pool():
    from assistants_project.capacity import check_worker_capacity

    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if "worker" not in command:
            continue
        pool = command[command.index("-P") + 1] if "-P" in command else "prefork"
        concurrency = int(command[command.index("-c") + 1])
        max_size = int((service.get("environment") or {}).get("DB_POOL_MAX_SIZE") or 20)
        check_worker_capacity(pool, concurrency, max_size)  # raises ImproperlyConfigured
        assert name


def test_a_run_whose_worker_died_after_writing_the_answer_is_completed_not_answered_twice(
        client, upstream, stack, orm):
    """The state a worker lost between the answer's close and the run's end leaves behind
    (the row still in progress, no heartbeat): recovery resumes it, and the new attempt ends it
    without calling the model again."""
    from apps.core.redis_client import get_redis
    from apps.runs import events
    from apps.runs.models import Run
    from apps.threads.models import Message

    bot = client.beta.assistants.create(model="gpt-4o")
    marker = f"answer once {uuid.uuid4().hex[:8]}"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": marker}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=bot.id,
                                                    poll_interval_ms=100)
    assert run.status == "completed"
    Run.objects.filter(pk=run.id).update(status="in_progress", completed_at=None,
                                         expires_at=int(time.time()) + 600)
    get_redis().delete(events.cancel_key(run.id), events.stop_key(run.id))

    final = _finished(client, thread.id, run.id)
    assert final.status == "completed"
    assert Run.objects.get(pk=run.id).resumes == 1
    assert len(_chat_calls(upstream, marker)) == 1
    assert Message.objects.filter(run_id=run.id, role="assistant").count() == 1
    assert _recovery_line(stack, "worker-runs", run.id, "resumed_run_already_answered")
