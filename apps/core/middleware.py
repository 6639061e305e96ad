from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.urls import Resolver404, resolve

from apps.core import log_context


class ResponseMiddleware(ABC):
    """A middleware that works on the request before the view (`before`, whose result it keeps)
    and on the response after it (`after`), the same under ASGI and WSGI."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def before(self, request) -> Any:
        return None

    @abstractmethod
    def after(self, request, response, kept: Any) -> None: ...

    def __call__(self, request):
        if self._async:
            return self._acall(request)
        kept = self.before(request)
        response = self.get_response(request)
        self.after(request, response, kept)
        return response

    async def _acall(self, request):
        kept = self.before(request)
        response = await self.get_response(request)
        self.after(request, response, kept)
        return response


class RequestIdMiddleware(ResponseMiddleware):
    """Every response carries an x-request-id, which the SDK exposes as `request_id`."""

    def before(self, request) -> str:
        return _begin(request)

    def after(self, request, response, request_id: str) -> None:
        response["x-request-id"] = request_id


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
