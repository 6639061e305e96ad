"""OpenTelemetry tracing, on when OTEL_EXPORTER_OTLP_ENDPOINT is set: a second web process and
runs worker (with a database and a Redis of their own, so their runs stay theirs) export to a
small OTLP/HTTP receiver here, and one run's trace must span the web request, the Celery
task and the upstream model call."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import make_client
from tests.fake_upstream import Reply
from tests.support.side_stack import start_side_stack


class Receiver:
    """Spans received: trace id -> [(service, span name, kind, attributes)]."""

    def __init__(self) -> None:
        self.traces: dict[str, list[tuple[str, str, int, dict]]] = defaultdict(list)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                    ExportTraceServiceRequest,
                    ExportTraceServiceResponse,
                )

                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                receiver.add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request) -> None:
        with self.lock:
            for spans in request.resource_spans:
                service = next((a.value.string_value for a in spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope in spans.scope_spans:
                    for span in scope.spans:
                        attributes = {a.key: a.value.string_value for a in span.attributes}
                        self.traces[span.trace_id.hex()].append((service, span.name, span.kind, attributes))


@pytest.fixture(scope="module")
def traced(stack, fake_upstream):
    """Web and a runs worker with tracing on, apart from the session's processes: a Redis and a
    database of their own, or the session's side takes the run and no worker span is exported.
    On a shared Redis the session's runs worker consumes the same queue (it did: the children
    read tests.settings, which pointed them at the session's Redis whatever REDIS_URL said); on
    a shared database alone the session's sweeper, blind to this Redis's heartbeats, would take
    the run for an orphan and enqueue it on its own."""
    receiver = Receiver()
    deployment, key = start_side_stack(stack, "traced", {
        "REDIS_URL": "", "METRICS_PORT": "0", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200"}, queues=("runs",))
    try:
        # The first run must find this worker consuming.
        log = deployment.log_dir / "worker-runs.log"
        deadline = time.monotonic() + 90
        while not (log.exists() and " ready." in log.read_text(errors="replace")):
            assert time.monotonic() < deadline, "the traced runs worker did not start"
            time.sleep(0.2)
        yield deployment, key, receiver
    finally:
        deployment.stop()
        receiver.server.shutdown()


def test_the_traced_deployment_is_apart_from_the_session(traced, stack):
    deployment, _, _ = traced
    for setting in ("REDIS_URL", "DATABASE_URL"):
        theirs = deployment.manage("shell", "-c", f"from django.conf import settings; print(settings.{setting})",
                                   capture=True).strip().splitlines()[-1]
        assert theirs == deployment.env[setting] != stack.env[setting]


def test_one_trace_spans_the_request_the_task_and_the_upstream_call(traced, fake_upstream):
    deployment, key, receiver = traced
    client = make_client(f"http://{deployment.host}:{deployment.port}/v1", key)
    fake_upstream.reset()
    fake_upstream.enqueue(Reply(text="traced"))
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "trace me"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=100, timeout=60)
    assert run.status == "completed", run.last_error
    client.close()

    def complete_trace():
        with receiver.lock:
            for trace_id, spans in receiver.traces.items():
                services = {service for service, *_ in spans}
                web = [s for s in spans if s[0] == "assistants-web" and s[1].startswith("POST")
                       and "/runs" in (s[3].get("url.path") or s[3].get("http.target") or s[1])]
                task = [s for s in spans if s[0] == "assistants-worker" and "execute_run" in s[1]]
                upstream = [s for s in spans if s[0] == "assistants-worker"
                            and s[1] == "POST chat.completions" and s[2] == 3]  # CLIENT
                if web and task and upstream and services >= {"assistants-web", "assistants-worker"}:
                    return trace_id
        return None

    deadline = time.monotonic() + 20
    while (found := complete_trace()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found, [(trace, [(s[0], s[1], s[3]) for s in spans]) for trace, spans in receiver.traces.items()
                   if any("run/workers.runs.tasks.execute_run" in s[1] or s[0] == "assistants-web" for s in spans)]
    # The upstream received the same trace in its traceparent header (W3C: 00-TRACE-SPAN-01).
    sent = [r.headers.get("traceparent") or r.headers.get("Traceparent") or ""
            for r in fake_upstream.requests if r.path.endswith("/chat/completions")]
    assert any(header.split("-")[1:2] == [found] for header in sent), sent
