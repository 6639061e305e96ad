"""What every API request passes before and after its view: the project's rate limit, and the
idempotency record that makes a retried POST safe (apps.core.ratelimit, apps.core.idempotency).
The headers themselves are added by apps.core.retry_headers, for every response."""

from __future__ import annotations

from apps.core import idempotency, ratelimit
from apps.core.errors import APIError


def admit(request, project) -> None:
    """Raises RateLimitError past the limit, Replay with a stored answer, or the idempotency
    refusals; a replay and a refusal are requests too, so the limiter counts them first."""
    django_request = request._request
    deferred: Exception | None = None
    try:
        django_request.idempotency_claim = idempotency.begin(request, project)
    except (idempotency.Replay, APIError) as exc:
        django_request.idempotency_claim = None
        deferred = exc
    decision = ratelimit.check(project, request.method, request.path)
    if decision is not None:
        django_request.ratelimit_headers = decision.headers()
    if deferred is not None:
        raise deferred


def settle(request, response):
    claim = getattr(request._request, "idempotency_claim", None)
    if claim is not None:
        request._request.idempotency_claim = None
        idempotency.finish(claim, request, response)
    return response
