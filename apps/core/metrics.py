"""The one home of Prometheus metrics. Every process (web replicas, Celery workers) writes its
samples to files under settings.METRICS_DIR (prometheus-client's multi-process mode), and
`/metrics` on any web process of the host sums them, so a counter is the deployment's, not one
process's."""

from __future__ import annotations

import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# prometheus-client picks its storage when first imported: the directory must be known first.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.METRICS_DIR))
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import (  # noqa: E402 (after the directory is set, see above)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

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


def metrics_view(request: HttpRequest) -> HttpResponse:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
