"""Headers the SDKs act on, on every response: the project's x-ratelimit-* figures (set by
apps.core.guard), and x-should-retry, so a client never retries what cannot succeed and always
retries what will."""

from __future__ import annotations

from apps.core.middleware import ResponseMiddleware

# Answers a retry can fix: a timeout, a concurrent duplicate, a rate limit, an overloaded or
# restarting server. Everything else 4xx is final for that request.
TRANSIENT = {408, 409, 429, 502, 503, 504}
DEFAULT_RETRY_AFTER_MS = "1000"


def apply(request, response) -> None:
    for name, value in (getattr(request, "ratelimit_headers", None) or {}).items():
        if name not in response:
            response[name] = value
    status = response.status_code
    if "x-should-retry" in response:
        return
    if status in TRANSIENT:
        response["x-should-retry"] = "true"
        if "retry-after-ms" not in response:
            response["retry-after-ms"] = DEFAULT_RETRY_AFTER_MS
    elif 400 <= status < 500:
        response["x-should-retry"] = "false"


class RetryHeadersMiddleware(ResponseMiddleware):
    def after(self, request, response, kept: None) -> None:
        apply(request, response)
