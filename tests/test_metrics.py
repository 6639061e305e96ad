"""Prometheus metrics against the running stack: a run (one upstream 500 retried), a Code
Interpreter run, an upload ingested into a vector store (and one that fails), HTTP requests and
a 429; then web's /metrics and every worker's and beat's own /metrics must show each metric with
its labels and the figures of what happened. The names the Kubernetes alerts and dashboard use
must all be exposed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_client, new_project_key
from tests.fake_upstream import Reply
from tests.support.limits import project_with_limits

MONITORING = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "components" / "monitoring"
WORKERS = ("worker-runs", "worker-ingest", "worker-sandbox", "beat")
DOCUMENT = b"Metrics are figures an operator can alert on. " * 40

# name -> the label names every one of its samples carries (histograms: plus `le` on buckets).
EXPECTED_LABELS = {
    "assistants_runs_finished_total": {"status", "model", "project"},
    "assistants_runs_active": {"status"},
    "assistants_runs_stale_seconds": set(),
    "assistants_queue_depth": {"queue"},
    "assistants_run_queue_wait_seconds_count": {"model"},
    "assistants_run_time_to_first_token_seconds_count": {"model"},
    "assistants_run_duration_seconds_count": {"model"},
    "assistants_tokens_total": {"model", "kind"},
    "assistants_upstream_requests_total": {"model"},
    "assistants_upstream_errors_total": {"class"},
    "assistants_sandbox_sessions": {"state"},
    "assistants_ingest_files_total": {"status"},
    "assistants_ingest_bytes_parsed_total": set(),
    "assistants_http_requests_total": {"route", "method", "status"},
    "assistants_http_request_duration_seconds_count": {"route", "method"},
}


@dataclass
class Scrape:
    samples: list[tuple[str, dict[str, str], float]]

    def value(self, name: str, **labels: str) -> float:
        return sum(v for n, have, v in self.samples
                   if n == name and all(have.get(k) == w for k, w in labels.items()))

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def labelled(self, name: str) -> list[dict[str, str]]:
        return [labels for n, labels, _ in self.samples if n == name]


def scrape(url: str) -> Scrape:
    response = httpx2.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return Scrape([(s.name, dict(s.labels), s.value)
                   for family in text_string_to_metric_families(response.text)
                   for s in family.samples])


def worker_url(stack, name: str) -> str:
    return f"http://{stack.host}:{stack.metrics_ports[name]}/metrics"


@dataclass
class Observed:
    before: Scrape
    after: Scrape
    model: str
    project_hash: str
    project_name: str
    thread_id: str
    run_id: str


def _wait_for(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"{what} did not hold within {timeout} s"
            return result
        time.sleep(0.2)


@pytest.fixture(scope="module")
def web_metrics(api_base) -> str:
    return api_base.rsplit("/v1", 1)[0] + "/metrics"


@pytest.fixture(scope="module")
def observed(stack, api_base, fake_upstream, web_metrics, django_db_blocker) -> Observed:
    from apps.core.models import Project

    project_name = f"metrics-{uuid.uuid4().hex[:10]}"
    client = make_client(api_base, new_project_key(stack, project_name))
    with django_db_blocker.unblock():
        project_id = Project.objects.get(name=project_name).pk
        _, limited_key = project_with_limits(stack, rate_limit_get_rpm=1)
    model = f"gpt-metrics-{uuid.uuid4().hex[:6]}"
    before = scrape(web_metrics)
    fake_upstream.reset()
    try:
        # A run whose first upstream attempt fails with a 500 and is retried.
        fake_upstream.fail_next(1, status=500)
        fake_upstream.enqueue(Reply(text="one two three", prompt_tokens=17, completion_tokens=5))
        assistant = client.beta.assistants.create(model=model)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "count"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                        poll_interval_ms=50)
        assert run.status == "completed", run.last_error

        # A Code Interpreter run, so a sandbox session goes live.
        def respond(request):
            if not [m for m in request["messages"] if m["role"] == "tool"]:
                return Reply(tool_calls=[("python", json.dumps({"code": "print(6 * 7)"}))])
            return Reply(text="42")
        fake_upstream.set_responder(respond)
        tutor = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        coded = client.beta.threads.create_and_run_poll(
            assistant_id=tutor.id, thread={"messages": [{"role": "user", "content": "6*7?"}]},
            poll_interval_ms=100)
        assert coded.status == "completed", coded.last_error
    finally:
        fake_upstream.reset()

    # Ingestion: a text file is parsed and stored, an unknown format fails.
    store = client.vector_stores.create(name="metrics")
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id, poll_interval_ms=50,
        files=[("notes.txt", io.BytesIO(DOCUMENT)), ("blob.xyz", io.BytesIO(b"\x00\x01 binary"))])
    assert (batch.file_counts.completed, batch.file_counts.failed) == (1, 1), batch.file_counts

    # HTTP: a 404 on a matched route, and a 429 from the rate limiter.
    missing = httpx2.get(f"{api_base}/threads/thread_missing", headers={
        "Authorization": f"Bearer {client.api_key}", "OpenAI-Beta": "assistants=v2"})
    assert missing.status_code == 404
    limited = [httpx2.get(f"{api_base}/assistants", headers={
        "Authorization": f"Bearer {limited_key}", "OpenAI-Beta": "assistants=v2"}).status_code
        for _ in range(2)]
    assert 429 in limited
    client.close()
    return Observed(before, scrape(web_metrics), model,
                    hashlib.sha256(project_id.encode()).hexdigest()[:8], project_name,
                    thread.id, run.id)


def test_a_run_is_counted_with_its_tokens_timings_and_upstream_calls(observed):
    before, after, model = observed.before, observed.after, observed.model
    assert after.value("assistants_runs_finished_total", status="completed", model=model,
                       project=observed.project_hash) == 1
    assert after.value("assistants_tokens_total", model=model, kind="prompt") == 17
    assert after.value("assistants_tokens_total", model=model, kind="completion") == 5
    for histogram in ("assistants_run_queue_wait_seconds", "assistants_run_time_to_first_token_seconds",
                      "assistants_run_duration_seconds"):
        assert after.value(f"{histogram}_count", model=model) == 1, histogram
        assert after.value(f"{histogram}_bucket", model=model, le="+Inf") == 1, histogram
        assert 0 < after.value(f"{histogram}_sum", model=model) < 30, histogram
    # The queue wait and first token come before the end of the run.
    assert (after.value("assistants_run_queue_wait_seconds_sum", model=model)
            <= after.value("assistants_run_duration_seconds_sum", model=model))
    # One 500, retried: two requests for the model, one server error.
    assert after.value("assistants_upstream_requests_total", model=model) == 2
    errors = ("assistants_upstream_errors_total", {"class": "server_error"})
    assert after.value(errors[0], **errors[1]) - before.value(errors[0], **errors[1]) == 1
    # The project is a hash of its id: its name appears nowhere.
    assert all(observed.project_name not in labels.get("project", "")
               for labels in after.labelled("assistants_runs_finished_total"))


def test_ingestion_counts_files_by_status_and_the_bytes_parsed(observed):
    before, after = observed.before, observed.after
    for status, expected in (("completed", 1), ("failed", 1)):
        delta = (after.value("assistants_ingest_files_total", status=status)
                 - before.value("assistants_ingest_files_total", status=status))
        assert delta == expected, status
    assert (after.value("assistants_ingest_bytes_parsed_total")
            - before.value("assistants_ingest_bytes_parsed_total")) == len(DOCUMENT)


def test_http_requests_are_counted_by_route_template_never_by_raw_path(observed):
    before, after = observed.before, observed.after
    runs = {"route": "/v1/threads/<str:thread_id>/runs", "method": "POST", "status": "200"}
    assert after.value("assistants_http_requests_total", **runs) > before.value(
        "assistants_http_requests_total", **runs)
    assert after.value("assistants_http_requests_total", route="/v1/threads/<str:thread_id>",
                       method="GET", status="404") >= 1
    assert after.value("assistants_http_requests_total", route="/v1/assistants", method="GET",
                       status="429") >= 1
    assert after.value("assistants_http_request_duration_seconds_count",
                       route="/v1/threads/<str:thread_id>/runs/<str:run_id>", method="GET") >= 1
    routes = {labels["route"] for labels in after.labelled("assistants_http_requests_total")}
    assert not [r for r in routes if observed.thread_id in r or observed.run_id in r
                or "thread_missing" in r], routes


@pytest.mark.docker
def test_every_metric_has_its_labels_on_web_and_the_workers_serve_their_own(observed, stack):
    after = observed.after
    for name, labels in EXPECTED_LABELS.items():
        seen = after.labelled(name)
        assert seen, f"{name} is not exposed"
        assert all(set(s) == labels for s in seen), (name, seen[:3])
    assert {labels["kind"] for labels in after.labelled("assistants_tokens_total")} >= {"prompt", "completion"}
    assert {labels["state"] for labels in after.labelled("assistants_sandbox_sessions")} == {"live", "pooled"}
    assert {labels["queue"] for labels in after.labelled("assistants_queue_depth")} == {"runs", "ingest", "sandbox"}
    assert after.value("assistants_sandbox_sessions", state="live") >= 1
    assert set(stack.metrics_ports) == set(WORKERS)
    assert len(set(stack.metrics_ports.values())) == len(WORKERS)
    for name in WORKERS:
        own = scrape(worker_url(stack, name))
        # One machine: every process's samples, the same figures as web's.
        assert own.value("assistants_tokens_total", model=observed.model, kind="prompt") == 17, name
        assert own.value("assistants_runs_finished_total", model=observed.model) == 1, name


@pytest.mark.docker
def test_the_warm_sandbox_pool_is_reported(observed, web_metrics):
    _wait_for(lambda: scrape(web_metrics).value("assistants_sandbox_sessions", state="pooled") >= 1,
              what="a pooled container (SANDBOX_WARM_POOL_SIZE=1)")


def test_every_name_the_alerts_and_dashboard_use_is_exposed(observed, stack):
    used = set()
    for path in MONITORING.glob("*.yaml"):
        used |= set(re.findall(r"assistants_[a-z_]+", path.read_text()))
    used |= set(re.findall(r"assistants_[a-z_]+", (MONITORING / "grafana-dashboard.json").read_text()))
    assert len(used) >= 10, used
    exposed = observed.after.names() | scrape(worker_url(stack, "worker-runs")).names()
    assert not used - exposed, sorted(used - exposed)


def test_a_stalled_queue_shows_as_depth_active_runs_and_a_stale_age(stack, client, web_metrics):
    """The runs worker is frozen (SIGSTOP): a new run waits queued, beat's tasks pile up in the
    `runs` list, and past RUN_ORPHAN_AFTER_SECONDS (4 s here) the run counts as stale."""
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "wait"}])
    worker = stack.children["worker-runs"]
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        stalled = _wait_for(lambda: (lambda s: s if s.value("assistants_runs_stale_seconds") >= 4
                                     else None)(scrape(web_metrics)), timeout=30,
                            what="a stale age of at least 4 s")
        assert stalled.value("assistants_runs_active", status="queued") >= 1
        assert stalled.value("assistants_queue_depth", queue="runs") >= 1
        assert stalled.value("assistants_runs_stale_seconds") < 60
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    done = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=100)
    assert done.status == "completed", done.last_error
    _wait_for(lambda: scrape(web_metrics).value("assistants_runs_stale_seconds") == 0,
              what="no stale run once the worker is back")
    _wait_for(lambda: scrape(web_metrics).value("assistants_queue_depth", queue="runs") == 0,
              what="the runs queue drained")
