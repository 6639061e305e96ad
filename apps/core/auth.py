"""Bearer API keys: each request acts for exactly one project."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from apps.core import log_context
from apps.core.errors import AuthenticationError
from apps.core.models import ApiKey, hash_api_key
from apps.core.sql import first_row

MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def _redact(raw: str) -> str:
    if len(raw) <= 8:
        return "*" * len(raw)
    return raw[:3] + "*" * 10 + raw[-4:]


def api_key_for_header(header: str) -> ApiKey:
    """The live key an `Authorization` header names, or the 401 OpenAI answers. Shared by DRF's
    authentication and the web edge, which checks a key before it reads any request body."""
    scheme, _, raw_key = header.partition(" ")
    raw_key = raw_key.strip()
    if scheme.lower() != "bearer" or not raw_key:
        raise AuthenticationError(MISSING_KEY_MESSAGE)
    api_key = first_row(ApiKey, {"key_hash": hash_api_key(raw_key), "revoked": False},
                        related=("project",))
    if api_key is None:
        raise AuthenticationError(
            f"Incorrect API key provided: {_redact(raw_key)}. "
            "You can find your API key in the server's DATA_DIR/dev-api-key or create one with "
            "`manage.py create_api_key`.",
            code="invalid_api_key",
        )
    return api_key


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        api_key = api_key_for_header(request.META.get("HTTP_AUTHORIZATION", ""))
        log_context.bind(project=str(api_key.project_id))
        return (None, api_key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class HasProject(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiKey)
