"""The one error handler: every refusal leaves in OpenAI's envelope."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from apps.core.errors import APIError


def _envelope(message: str, *, type_: str = "invalid_request_error", param=None, code=None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def api_error_response(exc: APIError) -> Response:
    return Response(exc.envelope(), status=exc.status_code, headers=exc.headers)


def handle_api_exception(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, APIError):
        return api_error_response(exc)
    request = context.get("request")
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(_envelope(str(exc.detail)), status=400)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        content_type = request.content_type if request is not None else ""
        view = context.get("view")
        accepted = [parser.media_type for parser in getattr(view, "parser_classes", [])] or [
            "application/json"]
        return Response(
            _envelope(
                f"Unsupported content type: '{content_type}'. This API method only accepts "
                f"{' or '.join(repr(media) for media in accepted)} requests, but you specified the header "
                f"'Content-Type: {content_type}'. Please try again with a supported content type."
            ),
            status=400,
        )
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        method = request.method if request is not None else ""
        path = request.path if request is not None else ""
        return Response(
            _envelope(f"Invalid method for URL ({method} {path})."),
            status=405,
        )
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return Response(_envelope(str(exc.detail)), status=401)
    if isinstance(exc, (Http404, drf_exceptions.NotFound)):
        return Response(_envelope("Not found."), status=404)
    if isinstance(exc, drf_exceptions.APIException):
        return Response(_envelope(str(exc.detail)), status=exc.status_code)
    return None  # a real bug: let it be a real 500


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(
        _envelope(f"Invalid URL ({request.method} {request.path})"), status=404
    )


def json_server_error(request) -> JsonResponse:
    response = JsonResponse(
        _envelope(
            "The server had an error while processing your request. Sorry about that!",
            type_="server_error",
        ),
        status=500,
    )
    response["x-should-retry"] = "false"
    return response
