"""Counts every HTTP request by its URL route template (`/v1/threads/<str:thread_id>/runs`,
never the raw path, so ids do not explode the label set) and times it to the response."""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from apps.core.metrics import HTTP_DURATION, HTTP_REQUESTS


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    return "/" + match.route.lstrip("^").rstrip("$")


def _record(request, response, started: float) -> None:
    route = route_of(request)
    HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    HTTP_DURATION.labels(route, request.method).observe(time.perf_counter() - started)


class HttpMetricsMiddleware:
    async_capable = True
    sync_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _record(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        _record(request, response, started)
        return response
