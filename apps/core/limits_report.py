"""A project's limits next to what it uses now, in words, for the admin page."""

from __future__ import annotations

import redis

from apps.core import quotas, ratelimit


def usage_lines(project) -> list[str]:
    lines = []
    for klass, row in ratelimit.usage(project).items():
        label = ratelimit.CLASSES[klass][2]
        lines.append(f"{label} requests: {row['used']} used of {row['limit']} per minute "
                     f"({row['remaining']} left)")
    from apps.files.services import storage_used

    limit = quotas.storage_limit(project)
    lines.append(f"File storage: {storage_used(project)} bytes of "
                 + (f"{limit} bytes" if limit else "no quota"))
    tokens = quotas.token_limit(project.pk)
    models = _models_with_token_counts(project.pk)
    if not models:
        lines.append("Tokens: none this minute" + (f" (quota {tokens} per minute per model)"
                                                     if tokens else " (no quota)"))
    for model in models:
        lines.append(f"Tokens, {model}: {quotas.tokens_used(project.pk, model)} this minute of "
                     + (f"{tokens}" if tokens else "no quota"))
    return lines


def _models_with_token_counts(project_id: str) -> list[str]:
    from apps.core.redis_client import get_redis

    prefix = f"tokenquota:{project_id}:"
    try:
        keys = list(get_redis().scan_iter(match=prefix + "*", count=200))
    except redis.RedisError:
        return []
    return sorted({key.decode()[len(prefix):].rsplit(":", 1)[0] for key in keys})
