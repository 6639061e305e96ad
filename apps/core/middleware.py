from __future__ import annotations

import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


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
        request_id = _request_id()
        request.request_id = request_id
        response = self.get_response(request)
        response["x-request-id"] = request_id
        return response

    async def _acall(self, request):
        request_id = _request_id()
        request.request_id = request_id
        response = await self.get_response(request)
        response["x-request-id"] = request_id
        return response


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex
