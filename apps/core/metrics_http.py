"""Counts every HTTP request by its URL route template (`/v1/threads/<str:thread_id>/runs`,
never the raw path, so ids do not explode the label set) and times it to the response."""

from __future__ import annotations

import time

from apps.core.metrics import HTTP_DURATION, HTTP_REQUESTS
from apps.core.middleware import ResponseMiddleware


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    return "/" + match.route.lstrip("^").rstrip("$")


def _record(request, response, started: float) -> None:
    route = route_of(request)
    HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    HTTP_DURATION.labels(route, request.method).observe(time.perf_counter() - started)


class HttpMetricsMiddleware(ResponseMiddleware):
    def before(self, request) -> float:
        return time.perf_counter()

    def after(self, request, response, started: float) -> None:
        _record(request, response, started)
