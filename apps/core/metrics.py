"""The one home of Prometheus metrics. Every process (web replicas, Celery workers) writes its
samples to files under settings.METRICS_DIR (prometheus-client's multi-process mode), and
`/metrics` on any web process of the host sums them, so a counter is the deployment's, not one
process's."""

from __future__ import annotations

import hashlib
import logging
import os
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# prometheus-client picks its storage when first imported: the directory must be known first.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.METRICS_DIR))
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import (  # noqa: E402 (after the directory is set, see above)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

logger = logging.getLogger(__name__)

RATE_LIMITED = Counter(
    "assistants_rate_limited_total",
    "Requests refused with 429 by the per-project rate limiter.",
    ["project", "request_class"],
)
QUOTA_REFUSALS = Counter(
    "assistants_quota_refusals_total",
    "Uploads or model calls refused because a project's quota was used up.",
    ["project", "quota"],
)
LIMITER_BACKEND_ERRORS = Counter(
    "assistants_limiter_backend_errors_total",
    "Redis failures the rate limiter or the idempotency store failed open on.",
    ["component"],
)
IDEMPOTENT_REPLAYS = Counter(
    "assistants_idempotent_replays_total",
    "POSTs answered with a stored first response (Idempotency-Key or a recognised SDK retry).",
    ["project", "kind"],
)



# -- runs -------------------------------------------------------------------------------------
# Labels stay few: a model name, a status, a short hash of the project id (never its name).
RUNS_FINISHED = Counter(
    "assistants_runs_finished_total", "Runs that reached a terminal status.",
    ["status", "model", "project"])
RUN_QUEUE_WAIT = Histogram(
    "assistants_run_queue_wait_seconds", "From a run's creation to a worker claiming it (first claim).",
    ["model"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
RUN_TIME_TO_FIRST_TOKEN = Histogram(
    "assistants_run_time_to_first_token_seconds",
    "From a run's model request being sent to the first streamed token or tool-call fragment.",
    ["model"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60))
RUN_DURATION = Histogram(
    "assistants_run_duration_seconds", "From a run's creation to its terminal status.",
    ["model"], buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
RUN_TASK_QUERIES = Histogram(
    "assistants_run_task_db_queries",
    "Database round trips one run task (a run's turn from claim to its end or hand-back) made.",
    buckets=(2, 4, 6, 8, 10, 15, 20, 30, 50, 100, 250))

# -- the upstream model -----------------------------------------------------------------------
TOKENS = Counter(
    "assistants_tokens_total", "Tokens the upstream reported (usage) for completed model calls.",
    ["model", "kind"])
UPSTREAM_REQUESTS = Counter(
    "assistants_upstream_requests_total", "Chat completion requests sent upstream (each retry counts).",
    ["model"])
UPSTREAM_ERRORS = Counter(
    "assistants_upstream_errors_total", "Failed upstream chat completion requests, by class.",
    ["class"])

# -- ingestion --------------------------------------------------------------------------------
INGEST_FILES = Counter(
    "assistants_ingest_files_total", "Vector store files whose ingestion task ended, by status.",
    ["status"])
INGEST_BYTES_PARSED = Counter(
    "assistants_ingest_bytes_parsed_total", "Bytes of the files whose text was parsed and stored.")

# -- HTTP (web) -------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "assistants_http_requests_total", "HTTP requests answered, by URL route template.",
    ["route", "method", "status"])
HTTP_DURATION = Histogram(
    "assistants_http_request_duration_seconds",
    "Time to the response (a stream's first byte, not its end), by URL route template.",
    ["route", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def project_hash(project_id: str) -> str:
    return hashlib.sha256(project_id.encode()).hexdigest()[:8]


def run_transitioned(run) -> None:
    """Called by apps.runs.state after each successful status change of a run."""
    try:
        model = run.model or "unknown"
        now_ns = time.time_ns()
        if run.status == "in_progress" and run.attempts == 1:
            RUN_QUEUE_WAIT.labels(model).observe(max(0, now_ns - run.created_ns) / 1e9)
        elif run.status in ("cancelled", "failed", "completed", "incomplete", "expired"):
            RUNS_FINISHED.labels(run.status, model, project_hash(run.project_id)).inc()
            RUN_DURATION.labels(model).observe(max(0, now_ns - run.created_ns) / 1e9)
    except Exception:  # noqa: BLE001 (a metric must never break a run)
        logger.exception("could not record run metrics")


def model_call_finished(model: str, started_ns: int, first_token_ns: int | None,
                        prompt_tokens: int, completion_tokens: int) -> None:
    if first_token_ns is not None:
        RUN_TIME_TO_FIRST_TOKEN.labels(model).observe(max(0, first_token_ns - started_ns) / 1e9)
    TOKENS.labels(model, "prompt").inc(prompt_tokens or 0)
    TOKENS.labels(model, "completion").inc(completion_tokens or 0)


def upstream_error_class(exc: BaseException) -> str:
    import openai

    if isinstance(exc, openai.RateLimitError):
        return "rate_limit"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        return "server_error" if exc.status_code >= 500 else "bad_request"
    if type(exc).__name__ == "StreamEndedEarly":
        return "stream_ended"
    return "other"


def upstream_failed(exc: BaseException) -> None:
    UPSTREAM_ERRORS.labels(upstream_error_class(exc)).inc()


def registry() -> CollectorRegistry:
    """Every process's samples of this machine or container."""
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


def metrics_view(request: HttpRequest) -> HttpResponse:
    from apps.core.metrics_scrape import StateCollector

    collected = registry()
    collected.register(StateCollector())
    return HttpResponse(generate_latest(collected), content_type=CONTENT_TYPE_LATEST)


def serve_worker_metrics(role: str) -> None:
    """A worker or beat serves /metrics on METRICS_PORT (0: none), in a daemon thread."""
    port = settings.METRICS_PORT
    if not port:
        return
    from prometheus_client import start_http_server

    start_http_server(port, addr=settings.METRICS_HOST, registry=registry())
    logger.info("%s serves metrics on http://%s:%s/metrics", role, settings.METRICS_HOST, port)


# Ingestion is counted from Celery's task signals (assistants_project/celery.py), reading the
# row before and after: a redelivered task for a file already done counts nothing.
_ingesting: dict[str, int] = {}


def ingest_task_started(task_id: str, entry_id: int) -> None:
    from apps.vector_stores.models import VectorStoreFile

    if VectorStoreFile.objects.filter(pk=entry_id, status="in_progress").exists():
        _ingesting[task_id] = entry_id


def ingest_task_ended(task_id: str) -> None:
    from apps.vector_stores.models import VectorStoreFile

    entry_id = _ingesting.pop(task_id, None)
    if entry_id is None:
        return
    entry = VectorStoreFile.objects.select_related("file").filter(pk=entry_id).first()
    if entry is None or entry.status == "in_progress":
        return
    INGEST_FILES.labels(entry.status).inc()
    if entry.status == "completed":
        INGEST_BYTES_PARSED.inc(entry.file.bytes)
