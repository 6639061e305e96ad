"""Scale-out and rollout, on one machine: the processes started as Kubernetes starts them (two
web pods, two runs-worker pods, one ingest, one sandbox and one beat pod, each with its own
metrics directory) on one Postgres database and one Redis (tests/support/cluster.py).

- 300 runs spread over both runs workers, each with a fair share;
- SIGTERM to a runs worker mid-stream: it stops taking work, hands its runs back at once (not
  through the orphan timeout), the other worker resumes them, every stream ends with `done`,
  no run is answered twice, and the deployment's /metrics add up to what happened;
- SIGTERM to a web pod: its open streams drain for WEB_DRAIN_SECONDS and then end with `done`
  (no dropped connection), and the run goes on, followed through the other web pod;
- two beats: only the one holding the Redis lock schedules maintenance, across a clean stop
  and a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx2
import openai
import psycopg
import pytest

from tests.fake_upstream import FakeUpstream, Reply
from tests.support.cluster import Cluster, StreamedRun, start_cluster, stream_new_run
from tests.test_metrics import scrape

LAYOUT = {"web-1": ("web",), "web-2": ("web",), "runs-1": ("runs",), "runs-2": ("runs",),
          "ingest": ("ingest",), "sandbox": ("sandbox",), "beat": ("beat",)}
WEBS = ("web-1", "web-2")
RUN_PODS = ("runs-1", "runs-2")
FAIR_RUNS = 300
SLOW_RUNS = 12
SLOW_WORDS = 40
WEB_DRAIN_SECONDS = 3.0
BEAT_LOCK_SECONDS = 8.0
SLOW = "slow answer please"
SLOWER = "much slower answer please"
BRIEF = "brief answer please"


def _responder(request: dict) -> Reply | None:
    asked = json.dumps(request.get("messages") or [])
    if SLOWER in asked:
        return Reply(text=" ".join(f"late{i}" for i in range(60)), per_chunk_delay=0.25)
    if BRIEF in asked:
        return Reply(text=" ".join(f"brief{i}" for i in range(8)), per_chunk_delay=0.1)
    if SLOW in asked:
        return Reply(text=" ".join(f"word{i}" for i in range(SLOW_WORDS)), per_chunk_delay=0.1)
    return None  # the default: an instant echo


@pytest.fixture(scope="module")
def upstream():
    upstream = FakeUpstream()
    upstream.set_responder(_responder)
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def cluster(stack, upstream, sandbox_image):
    cluster = start_cluster(stack.data_dir / "rollout", stack.env["DATABASE_URL"], "rollout", LAYOUT, {
        "LLM_BASE_URL": upstream.base_url, "LLM_API_KEY": "sk-fake",
        "EMBEDDINGS_BASE_URL": upstream.base_url, "EMBEDDINGS_API_KEY": "sk-fake",
        "SANDBOX_IMAGE": sandbox_image, "SANDBOX_WARM_POOL_SIZE": "0",
        "RATE_LIMITS_ENABLED": "false",
        "SSE_KEEPALIVE_SECONDS": "0.5",
        # Far longer than the test: a run that comes back comes back by hand-back, never
        # through the sweeper's orphan recovery.
        "RUN_ORPHAN_AFTER_SECONDS": "120",
        "MAINTENANCE_INTERVAL_SECONDS": "0.5",
        "RUN_DRAIN_SECONDS": "1",
        "WEB_DRAIN_SECONDS": str(WEB_DRAIN_SECONDS),
        "BEAT_LOCK_SECONDS": str(BEAT_LOCK_SECONDS),
    })
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def assistant_id(cluster) -> str:
    sdk = openai.OpenAI(base_url=cluster.web_url("web-1"), api_key=cluster.api_key, max_retries=0)
    return sdk.beta.assistants.create(model="gpt-4o").id


def _rows(cluster: Cluster, sql: str, *params) -> list[tuple]:
    with psycopg.connect(cluster.database_url) as db:
        return db.execute(sql, params).fetchall()


def _stream_many(cluster: Cluster, assistant_id: str, contents: list[str], workers: int,
                 on_event=None) -> list[StreamedRun]:
    """Each content a streamed run, alternately through each web pod."""
    local = threading.local()

    def one(index: int) -> StreamedRun:
        if not hasattr(local, "http"):
            # A connection per stream: reusing a kept-alive one races the server closing it
            # when a loaded machine leaves it idle for uvicorn's keep-alive timeout.
            local.http = httpx2.Client(headers={"Authorization": f"Bearer {cluster.api_key}",
                                                "OpenAI-Beta": "assistants=v2"},
                                       limits=httpx2.Limits(max_keepalive_connections=0))
        base_url = cluster.web_url(WEBS[index % len(WEBS)])
        return stream_new_run(local.http, base_url, assistant_id, contents[index], on_event)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(len(contents))))


def _finished_by(cluster: Cluster, pod: str) -> float:
    return scrape(cluster.metrics_url(pod, "worker-runs")).value(
        "assistants_runs_finished_total", status="completed")


def _deployment_sum(cluster: Cluster, name: str, **labels: str) -> float:
    """A figure summed over every pod, as Prometheus adds up a deployment."""
    total = 0.0
    for pod, stack in cluster.pods.items():
        for child in stack.children:
            if child == "web" or child.startswith("worker-") or child == "beat":
                total += scrape(cluster.metrics_url(pod, child)).value(name, **labels)
    return total


def test_runs_spread_over_both_workers_and_a_sigtermed_worker_hands_its_runs_back(cluster, assistant_id):
    for web in WEBS:
        ready = httpx2.get(cluster.web_url(web).removesuffix("/v1") + "/readyz", timeout=30).json()
        assert ready["checks"]["workers"]["ok"], ready

    # 300 short runs through both web pods: each runs worker takes a fair share.
    fair = _stream_many(cluster, assistant_id, [f"hello {i}" for i in range(FAIR_RUNS)], workers=24)
    assert [r.error for r in fair if r.error] == []
    assert all(r.ended_with_done and r.last_run_event() == "thread.run.completed" for r in fair)
    shares = {pod: _finished_by(cluster, pod) for pod in RUN_PODS}
    assert sum(shares.values()) == FAIR_RUNS, shares
    assert all(share >= 0.3 * FAIR_RUNS for share in shares.values()), shares

    # Runs mid-stream on both workers; then runs-1 gets SIGTERM.
    streaming = threading.Semaphore(0)

    def note_first_delta(record: StreamedRun, name: str) -> None:
        if name == "thread.message.delta" and record.names().count(name) == 1:
            streaming.release()

    results: list[StreamedRun] = []
    client = threading.Thread(target=lambda: results.extend(_stream_many(
        cluster, assistant_id, [f"{SLOW} {i}" for i in range(SLOW_RUNS)], SLOW_RUNS, note_first_delta)))
    client.start()
    for started in range(SLOW_RUNS):
        assert streaming.acquire(timeout=60), f"only {started} of {SLOW_RUNS} runs streamed"
    worker = cluster.pods["runs-1"].children.pop("worker-runs")
    signalled = time.monotonic()
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)
    exited_after = time.monotonic() - signalled
    client.join(timeout=90)
    assert not client.is_alive()

    # Every stream went on to its end, `done`, with the whole answer once.
    whole = " ".join(f"word{i}" for i in range(SLOW_WORDS))
    assert [r.error for r in results if r.error] == []
    for record in results:
        assert record.ended_with_done and record.last_run_event() == "thread.run.completed", record.names()
        completed = [json.loads(data) for _, name, data in record.events if name == "thread.message.completed"]
        assert [m["content"][0]["text"]["value"] for m in completed] == [whole]
    slow_ids = [r.run_id for r in results]
    log = cluster.log("runs-1", "worker-runs")
    handed_back = {run_id for run_id in slow_ids if f"recovery run={run_id} event=handed_back " in log}
    assert handed_back, "runs-1 held none of the streaming runs"
    for record in results:
        # A handed-back run's stream says so (`thread.run.queued` after it had started) and goes
        # on within seconds; the others' streams were never interrupted.
        gap = record.content_gap()
        assert (gap is not None) == (record.run_id in handed_back), record.names()
        assert gap is None or gap < 5.0, gap
    # Handed back at once: the worker was gone long before any orphan timeout (120 s).
    assert exited_after < 20, exited_after
    # Nothing the sweeper did: no run was ever taken for an orphan.
    assert "orphan_requeued" not in cluster.log("beat", "beat") + log + cluster.log("runs-2", "worker-runs")

    # None answered twice: one assistant message, one answer step, one finished model call each;
    # a handed-back run's interrupted call is the only other one, and it never finished.
    rows = _rows(cluster, """
        SELECT r.id, r.status, r.attempts,
               (SELECT count(*) FROM threads_message m WHERE m.run_id = r.id AND m.role = 'assistant'),
               (SELECT count(*) FROM runs_runstep s WHERE s.run_id = r.id),
               (SELECT count(*) FROM runs_modelcall c WHERE c.run_id = r.id AND c.finished_ns IS NOT NULL),
               (SELECT count(*) FROM runs_modelcall c WHERE c.run_id = r.id AND c.finished_ns IS NULL)
        FROM runs_run r WHERE r.id = ANY(%s)""", slow_ids)
    assert len(rows) == SLOW_RUNS
    for run_id, status, attempts, messages, steps, finished, unfinished in rows:
        again = run_id in handed_back
        assert (status, messages, steps, finished) == ("completed", 1, 1, 1), run_id
        assert (attempts, unfinished) == ((2, 1) if again else (1, 0)), run_id

    # A replacement pod (its container restarted, its metric files kept); then the deployment's
    # figures are what happened.
    cluster.restart("runs-1", "runs")
    completed, prompt, completion = _rows(cluster, """
        SELECT count(*), sum(prompt_tokens), sum(completion_tokens) FROM runs_run
        WHERE status = 'completed'""")[0]
    assert completed == FAIR_RUNS + SLOW_RUNS
    assert _deployment_sum(cluster, "assistants_runs_finished_total", status="completed") == completed
    assert _deployment_sum(cluster, "assistants_tokens_total", kind="prompt") == prompt
    assert _deployment_sum(cluster, "assistants_tokens_total", kind="completion") == completion


def test_a_sigtermed_web_pod_drains_its_streams_then_ends_them_with_done(cluster, assistant_id):
    """A run that ends within the drain ends its stream as always; one that goes on gets `done`
    after WEB_DRAIN_SECONDS (the SDK returns, no dropped connection) and is followed to its end
    through the other web pod."""
    sdk = {web: openai.OpenAI(base_url=cluster.web_url(web), api_key=cluster.api_key, max_retries=0,
                              timeout=60) for web in WEBS}
    outcomes: dict[str, tuple[str, openai.types.beta.threads.Run | None, BaseException | None]] = {}
    opened = threading.Semaphore(0)

    class Opened(openai.AssistantEventHandler):
        def on_text_delta(self, delta, snapshot) -> None:
            if len(snapshot.value.split()) == 1:
                opened.release()

    def stream(label: str, content: str) -> None:
        thread = sdk["web-1"].beta.threads.create(messages=[{"role": "user", "content": content}])
        try:
            with sdk["web-1"].beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id,
                                                       event_handler=Opened()) as events:
                events.until_done()
            outcomes[label] = (thread.id, events.get_final_run(), None)
        except BaseException as error:  # noqa: BLE001 (a dropped stream is the failure)
            outcomes[label] = (thread.id, None, error)

    clients = [threading.Thread(target=stream, args=("short", f"{BRIEF} short")),
               threading.Thread(target=stream, args=("long", f"{SLOWER} long"))]
    for client in clients:
        client.start()
    for _ in clients:
        assert opened.acquire(timeout=60)
    web = cluster.pods["web-1"].children.pop("web")
    signalled = time.monotonic()
    os.killpg(web.pid, signal.SIGTERM)
    for client in clients:
        client.join(timeout=60)
    web.wait(timeout=30)
    exited_after = time.monotonic() - signalled

    assert outcomes["short"][2] is None and outcomes["short"][1].status == "completed"
    thread_id, final, error = outcomes["long"]
    assert error is None, repr(error)
    assert final.status == "in_progress"  # the stream ended cleanly while the run went on
    assert WEB_DRAIN_SECONDS - 0.5 < exited_after < WEB_DRAIN_SECONDS + 6, exited_after
    # Followed to its end through the other web pod.
    run = sdk["web-2"].beta.threads.runs.poll(final.id, thread_id=thread_id, poll_interval_ms=200)
    assert run.status == "completed"
    answer = sdk["web-2"].beta.threads.messages.list(thread_id, run_id=run.id).data
    assert answer[0].content[0].text.value == " ".join(f"late{i}" for i in range(60))
    cluster.restart("web-1", "web")


_SENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Scheduler: Sending due task expire-runs ")


def _sends(cluster: Cluster, pod: str, since: int = 0) -> list[float]:
    """When the beat of `pod` sent the expire-runs sweep (epoch seconds), from byte `since` on."""
    text = (cluster.pods[pod].log_dir / "beat.log").read_bytes()[since:].decode(errors="replace")
    return [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for m in map(_SENT.match, text.splitlines()) if m]


def _log_size(cluster: Cluster, pod: str) -> int:
    path = cluster.pods[pod].log_dir / "beat.log"
    return path.stat().st_size if path.exists() else 0


def _wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_two_beats_never_both_schedule_maintenance(cluster):
    """A second beat (the new pod of a rollout) stands by while the first holds the lock, takes
    over at once when the first stops cleanly, and only once the lock lapsed when it was killed."""
    first, second = "beat", "ingest"  # the second beat runs in another pod
    from_first, from_second = _log_size(cluster, first), _log_size(cluster, second)
    cluster.start(second, "beat")
    _wait_for(lambda: "standing by" in cluster.log(second, "beat"), 60, "the second beat to stand by")
    time.sleep(4)
    assert _sends(cluster, first, from_first), "the first beat stopped scheduling"
    assert _sends(cluster, second, from_second) == []

    # A clean stop lets go of the lock: the second beat takes over within its standby poll.
    cluster.pods[first].stop_child("beat")
    stopped = time.time()
    taken = _wait_for(lambda: _sends(cluster, second, from_second), 10, "the second beat to take over")[0]
    assert taken - stopped < 3.0
    assert max(_sends(cluster, first, from_first)) < taken

    # The first beat comes back and stands by; the second is killed without letting go: the
    # first waits for the lock to lapse.
    from_first = _log_size(cluster, first)
    cluster.start(first, "beat")
    _wait_for(lambda: "standing by" in cluster.log(first, "beat")[from_first:], 60, "the first beat to stand by")
    beat = cluster.pods[second].children.pop("beat")
    os.killpg(beat.pid, signal.SIGKILL)
    beat.wait()
    killed = time.time()
    last_second = max(_sends(cluster, second, from_second))
    resumed = _wait_for(lambda: _sends(cluster, first, from_first), 3 * BEAT_LOCK_SECONDS + 10,
                        "the first beat to take over")[0]
    # The lock was last renewed at most a third of its lifetime before the kill.
    assert resumed - killed > BEAT_LOCK_SECONDS / 2, (resumed - killed)
    assert resumed > last_second


def test_a_run_ended_elsewhere_tells_its_worker_to_stop_and_a_cancel_stays_a_cancel(
        client, fake_upstream, orm):
    """Stop and cancel are two facts in Redis: an operator's expiry stops the worker without
    looking like the caller's cancel, and a cancel is recorded as one."""
    from apps.core.redis_client import get_redis
    from apps.runs import events, services
    from apps.runs.models import Run

    fake_upstream.reset()
    fake_upstream.set_responder(lambda request: Reply(text=" ".join(f"w{i}" for i in range(80)),
                                                      per_chunk_delay=0.1))
    try:
        bot = client.beta.assistants.create(model="gpt-4o")
        runs = []
        for _ in range(2):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "go on"}])
            runs.append(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=bot.id))
        for run in runs:
            _wait_for(lambda run=run: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
                      .status == "in_progress", 30, "the run to start")
        expired, cancelled = runs
        row = Run.objects.get(pk=expired.id)
        services.expire_run(row.project, expired.thread_id, expired.id)
        client.beta.threads.runs.cancel(cancelled.id, thread_id=cancelled.thread_id)
        store = get_redis()
        assert store.exists(events.stop_key(expired.id)) and not store.exists(events.cancel_key(expired.id))
        assert store.exists(events.cancel_key(cancelled.id))
        for run, status in ((expired, "expired"), (cancelled, "cancelled")):
            _wait_for(lambda run=run, status=status: client.beta.threads.runs.retrieve(
                run.id, thread_id=run.thread_id).status == status, 30, f"the run to be {status}")
    finally:
        fake_upstream.reset()
