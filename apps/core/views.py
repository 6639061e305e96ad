"""The base API view every endpoint uses, and the health endpoints."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from rest_framework.views import APIView

from apps.core import guard
from apps.core.errors import InvalidRequestError
from apps.core.idempotency import Replay
from apps.core.models import Project
from apps.core.openapi import validate_request
from apps.core.pagination import STANDARD, ListRules, paginate
from apps.core.parsers import reject_unstorable_params

BETA_MISSING = (
    "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again by "
    "setting the header 'OpenAI-Beta: assistants=v2'."
)
BETA_V1 = (
    "The v1 Assistants API has been deprecated. Please try again by setting the header "
    "'OpenAI-Beta: assistants=v2'. See the migration guide for more information: "
    "https://platform.openai.com/docs/assistants/migration."
)


def check_beta_header(value: str | None) -> None:
    features = {part.strip() for part in (value or "").split(",")}
    if "assistants=v2" in features:
        return
    if "assistants=v1" in features:
        raise InvalidRequestError(BETA_V1, code="invalid_beta")
    raise InvalidRequestError(BETA_MISSING, code="invalid_beta")


# Path parameters and the prefix their IDs must carry (OpenAI answers a wrong one with a 400).
PATH_ID_PREFIXES = {
    "assistant_id": "asst",
    "thread_id": "thread",
    "message_id": "msg",
    "run_id": "run",
    "step_id": "step",
    "file_id": "file",
    "store_id": "vs",
    "batch_id": "vsfb",
}


def check_path_ids(kwargs: dict) -> None:
    for param, value in kwargs.items():
        prefix = PATH_ID_PREFIXES.get(param)
        if prefix and not str(value).startswith(prefix):
            name = "vector_store_id" if param == "store_id" else param
            raise InvalidRequestError(
                f"Invalid '{name}': '{value}'. Expected an ID that begins with '{prefix}'.",
                param=name, code="invalid_value")


class ApiView(APIView):
    """Authenticated, project-scoped endpoint. `requires_beta` marks the /assistants and
    /threads families, which demand `OpenAI-Beta: assistants=v2`."""

    requires_beta = False

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        guard.admit(request, self.project)
        if self.requires_beta:
            check_beta_header(request.headers.get("OpenAI-Beta"))
        reject_unstorable_params(
            {("vector_store_id" if name == "store_id" else name): value for name, value in kwargs.items()})
        reject_unstorable_params((name, value) for name, values in request.query_params.lists()
                                 for value in values)
        check_path_ids(kwargs)

    def handle_exception(self, exc):
        if isinstance(exc, Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        return guard.settle(request, super().finalize_response(request, response, *args, **kwargs))

    @property
    def project(self) -> Project:
        return self.request.auth.project

    def page(self, queryset, render, rules: ListRules | None = None, cursor_field: str = "pk") -> dict:
        """A list page of `queryset` under the request's cursor parameters (the one paginator)."""
        return paginate(self.request.query_params, queryset, render, rules or STANDARD,
                        cursor_field=cursor_field, project_id=self.project.pk)

    def body(self) -> object:
        """The parsed JSON body; an absent body is an empty object."""
        data = self.request.data
        return {} if data is None else data

    def validated(self, schema_name: str) -> dict:
        """The body, checked against the spec's request schema (a 400 naming the field)."""
        body = self.body()
        validate_request(schema_name, body)
        return body

    def poll_headers(self) -> dict[str, str]:
        """How soon a client polling an object still in progress should ask again."""
        return {"openai-poll-after-ms": str(settings.POLL_AFTER_MS)}


def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    from apps.core.readiness import readiness_report

    report = readiness_report()
    return JsonResponse(report, status=200 if report["ready"] else 503)

