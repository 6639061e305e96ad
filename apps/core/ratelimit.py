"""Per-project request rate limits, shared by every web replica through Redis.

Each (project, request class) is a GCRA bucket (a token bucket kept as one timestamp): a burst
of up to the limit, refilled continuously at limit/60 per second. One Lua script reads the
clock, decides and updates the bucket in one atomic round trip. When Redis cannot be reached
the request goes through (fail open) with a log line and a metric: a limiter outage must never
turn into an API outage."""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.core.errors import APIError

logger = logging.getLogger(__name__)

PERIOD_MS = 60_000
# After a Redis failure the limiter skips Redis this long, so an outage costs no time per request.
BREAKER_SECONDS = 1.0

# Per class: (settings name, Project field, how the 429 names it).
CLASSES: dict[str, tuple[str, str, str]] = {
    "get": ("RATE_LIMIT_GET_RPM", "rate_limit_get_rpm", "GET"),
    "post": ("RATE_LIMIT_POST_RPM", "rate_limit_post_rpm", "POST"),
    "runs": ("RATE_LIMIT_RUNS_RPM", "rate_limit_runs_rpm", "run creation (POST .../runs)"),
    "delete": ("RATE_LIMIT_DELETE_RPM", "rate_limit_delete_rpm", "DELETE"),
}
# POST /v1/threads/{thread_id}/runs and POST /v1/threads/runs: the FAQ's own, lower limit.
RUNS_CREATE_PATH = re.compile(r"^/v1/threads/(?:[^/]+/)?runs$")

_SCRIPT = """
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if now < new_tat - period then
  return {0, 0, math.ceil(tat - now), math.ceil(new_tat - period - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
-- (the small epsilon keeps 60000/9-style intervals from flooring 8 to 7)
return {1, math.floor((period - (new_tat - now)) / interval + 1e-6), math.ceil(new_tat - now), 0}
"""


class RateLimitError(APIError):
    status_code = 429
    error_type = "rate_limit_exceeded"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_ms: int
    retry_after_ms: int

    def headers(self) -> dict[str, str]:
        headers = {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": format_duration(self.reset_ms),
        }
        if not self.allowed:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after_ms / 1000)))
            headers["retry-after-ms"] = str(self.retry_after_ms)
        return headers


def format_duration(ms: int) -> str:
    """OpenAI's (Go's) duration spelling: 20ms, 1s, 17.28s, 6m0s, 1h2m3s."""
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def request_class(method: str, path: str) -> str | None:
    if method in ("GET", "HEAD"):
        return "get"
    if method == "DELETE":
        return "delete"
    if method == "POST":
        return "runs" if RUNS_CREATE_PATH.match(path) else "post"
    return None


def limit_for(project, klass: str) -> int:
    """The project's own limit when set, else the setting; 0 means unlimited."""
    setting_name, field, _ = CLASSES[klass]
    own = getattr(project, field, None)
    return int(own) if own is not None else int(getattr(settings, setting_name))


class _Limiter:
    def __init__(self, url: str) -> None:
        # Short timeouts and no retries: a slow or absent Redis must cost milliseconds, once.
        self.client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25,
                                           retry=Retry(NoBackoff(), 0), health_check_interval=30)
        self.script = self.client.register_script(_SCRIPT)
        self.down_until = 0.0

    def decide(self, key: str, limit: int) -> Decision | None:
        if time.monotonic() < self.down_until:
            _failed_open("rate_limiter", None)
            return None
        try:
            allowed, remaining, reset_ms, retry_ms = self.script(keys=[key], args=[PERIOD_MS, limit])
        except redis.RedisError as exc:
            self.down_until = time.monotonic() + BREAKER_SECONDS
            _failed_open("rate_limiter", exc)
            return None
        return Decision(bool(allowed), limit, int(remaining), int(reset_ms), int(retry_ms))


@cache
def limiter() -> _Limiter:
    return _Limiter(settings.RATE_LIMIT_REDIS_URL)


def _failed_open(component: str, exc: Exception | None) -> None:
    from apps.core.metrics import LIMITER_BACKEND_ERRORS

    LIMITER_BACKEND_ERRORS.labels(component).inc()
    if exc is not None:  # one line per outage second, not one per request
        logger.warning("%s: Redis unavailable, failing open: %s", component, exc)


def check(project, method: str, path: str) -> Decision | None:
    """The decision for one request (None: not limited, or the limiter is down); raises
    RateLimitError, carrying the headers, past the limit."""
    klass = request_class(method, path)
    if klass is None or not settings.RATE_LIMITS_ENABLED:
        return None
    limit = limit_for(project, klass)
    if limit <= 0:
        return None
    decision = limiter().decide(f"ratelimit:{project.pk}:{klass}", limit)
    if decision is None or decision.allowed:
        return decision
    from apps.core.metrics import RATE_LIMITED

    RATE_LIMITED.labels(project.pk, klass).inc()
    label = CLASSES[klass][2]
    wait = format_duration(decision.retry_after_ms)
    logger.info("rate limited: project %s, %s, limit %s/min", project.pk, klass, limit)
    raise RateLimitError(
        f"Rate limit reached for {label} requests per min (RPM) in project {project.pk}: "
        f"Limit {limit}, Used {limit}, Requested 1. Please try again in {wait}. The limit "
        f"resets to full in {format_duration(decision.reset_ms)}.",
        code="rate_limit_exceeded", headers=decision.headers())


def usage(project) -> dict[str, dict[str, int | str]]:
    """Each class's limit and what is left of it now, for the admin (no request is counted)."""
    rows: dict[str, dict[str, int | str]] = {}
    try:
        client = limiter().client
        stored = client.mget([f"ratelimit:{project.pk}:{klass}" for klass in CLASSES])
        now_ms = time.time() * 1000
    except redis.RedisError:
        stored = [None] * len(CLASSES)
        now_ms = 0.0
    for (klass, _), tat in zip(CLASSES.items(), stored, strict=True):
        limit = limit_for(project, klass)
        used = 0
        if tat is not None and limit > 0:
            used = min(limit, math.ceil(max(0.0, float(tat) - now_ms) / (PERIOD_MS / limit)))
        rows[klass] = {"limit": limit or "unlimited", "used": used,
                       "remaining": (limit - used) if limit > 0 else "unlimited"}
    return rows
