"""OpenTelemetry tracing of web → Celery → upstream, on only when OTEL_EXPORTER_OTLP_ENDPOINT
is set (the exporter reads it and the other OTEL_* variables itself). Web's ASGI spans carry
into the tasks it enqueues (Celery headers) and from there into the model calls (a client span
here, its `traceparent` sent upstream: the openai client's httpx2 has no instrumentation), so
one trace id follows a run. Off, nothing here is imported."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_started = False


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def start(service: str) -> bool:
    """Install the tracer provider and instrument Celery and httpx in this process."""
    global _started
    if _started or not enabled():
        return _started
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or
                                f"assistants-{service}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    celery = CeleryInstrumentor()
    celery.instrument()
    # Its publish hooks find no task for `send_task` by name (how this code enqueues) and then
    # never end the span they opened: `inject` below carries the context instead.
    from celery import signals

    signals.before_task_publish.disconnect(celery._trace_before_publish)
    signals.after_task_publish.disconnect(celery._trace_after_publish)

    _started = True
    return True


def wrap_asgi(application):
    if not start("web"):
        return application
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(application, excluded_urls="healthz,readyz,metrics")


def inject(headers: dict) -> None:
    """The current trace context into an outgoing task's headers (the worker's Celery
    instrumentation extracts it)."""
    if _started:
        from opentelemetry.propagate import inject as inject_context

        inject_context(headers)


@contextlib.contextmanager
def upstream_call(model: str, base_url: str, request: dict) -> Iterator[dict]:
    """A client span around one upstream model request; yields the request to send, carrying
    the trace context in its headers."""
    if not _started:
        yield request
        return
    from opentelemetry import trace
    from opentelemetry.propagate import inject as inject_context

    tracer = trace.get_tracer("assistants.upstream")
    with tracer.start_as_current_span("POST chat.completions", kind=trace.SpanKind.CLIENT,
                                      attributes={"gen_ai.request.model": model,
                                                  "server.address": base_url}):
        headers = dict(request.get("extra_headers") or {})
        inject_context(headers)
        yield {**request, "extra_headers": headers}


def flush() -> None:
    if _started:
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()
