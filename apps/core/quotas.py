"""Optional per-project quotas, off unless a setting or the project enables them: model tokens
per minute (per model, counted in Redis by every worker) and total stored file bytes."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from apps.core.errors import InvalidRequestError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class TokenQuotaExceeded(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def storage_limit(project) -> int | None:
    """Bytes the project may store, or None for no quota."""
    own = project.storage_limit_bytes
    if own is not None:
        return own or None
    return settings.STORAGE_QUOTA_BYTES if settings.STORAGE_QUOTA_ENABLED else None


def _bytes(count: int) -> str:
    for unit, size in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count} bytes"


def refuse_storage(project, used: int, incoming: int, limit: int) -> InvalidRequestError:
    from apps.core.metrics import QUOTA_REFUSALS

    QUOTA_REFUSALS.labels(project.pk, "storage").inc()
    logger.info("storage quota: project %s refused %s bytes (%s of %s used)", project.pk, incoming,
                used, limit)
    return InvalidRequestError(
        f"This upload of {_bytes(incoming)} would exceed the project's file storage quota: "
        f"{_bytes(used)} of {_bytes(limit)} used ({used} of {limit} bytes). Delete files or ask "
        "an administrator to raise the quota.", param="file", code="quota_exceeded")


def token_limit(project_id: str) -> int:
    """Tokens per minute per model for the project; 0 means no quota."""
    from apps.core.models import Project

    own = Project.objects.filter(pk=project_id).values_list("tokens_per_minute", flat=True).first()
    return int(own) if own is not None else settings.TOKEN_QUOTA_TPM


def _keys(project_id: str, model: str, now: float) -> tuple[str, str, float]:
    window = int(now // WINDOW_SECONDS)
    base = f"tokenquota:{project_id}:{model}"
    return f"{base}:{window}", f"{base}:{window - 1}", (now % WINDOW_SECONDS) / WINDOW_SECONDS


def tokens_used(project_id: str, model: str) -> int:
    """Tokens of the last minute: this window's count plus the part of the previous window's
    that still falls within 60 s (a sliding window from two counters)."""
    from apps.core.redis_client import get_redis

    current, previous, elapsed = _keys(project_id, model, time.time())
    now_count, before_count = get_redis().mget([current, previous])
    return int(now_count or 0) + int(int(before_count or 0) * (1 - elapsed))


def check_tokens(project_id: str, model: str, limit: int | None = None) -> int:
    """Before a model call: refuse it once the project's minute of tokens for this model is
    used up. Returns the quota (0: none). Redis unreachable: the call goes ahead. `limit` is
    the project's quota when the caller read it already (the run's claim does)."""
    limit = token_limit(project_id) if limit is None else limit
    if limit <= 0:
        return 0
    try:
        used = tokens_used(project_id, model)
    except redis.RedisError as exc:
        logger.warning("token quota: Redis unavailable, not enforced: %s", exc)
        return limit
    if used < limit:
        return limit
    from apps.core.metrics import QUOTA_REFUSALS

    QUOTA_REFUSALS.labels(project_id, "tokens").inc()
    logger.info("token quota: project %s, model %s, %s of %s tokens per minute", project_id, model,
                used, limit)
    raise TokenQuotaExceeded(
        f"Rate limit reached for {model} in project {project_id} on tokens per min (TPM): "
        f"Limit {limit}, Used {used}. Please try again in {WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS}s.")


def record_tokens(project_id: str, model: str, tokens: int) -> None:
    if tokens <= 0:
        return
    from apps.core.redis_client import get_redis

    current, _, _ = _keys(project_id, model, time.time())
    try:
        pipe = get_redis().pipeline()
        pipe.incrby(current, tokens)
        pipe.expire(current, 2 * WINDOW_SECONDS + 5)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("token quota: Redis unavailable, %s tokens not counted: %s", tokens, exc)
