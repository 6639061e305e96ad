from __future__ import annotations

import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.urls import Resolver404, resolve

from apps.core import log_context


class RequestIdMiddleware:
    """Every response carries an x-request-id, which the SDK exposes as `request_id`."""

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
        request_id = _begin(request)
        response = self.get_response(request)
        response["x-request-id"] = request_id
        return response

    async def _acall(self, request):
        request_id = _begin(request)
        response = await self.get_response(request)
        response["x-request-id"] = request_id
        return response


def _begin(request) -> str:
    request_id = "req_" + uuid.uuid4().hex
    request.request_id = request_id
    log_context.clear()
    try:
        ids = log_context.ids_in(resolve(request.path_info).kwargs)
    except Resolver404:
        ids = {}
    log_context.bind(request_id=request_id, **ids)
    return request_id
