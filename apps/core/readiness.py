"""What /readyz reports: can we reach the database, Redis and at least one worker per queue.

/readyz is unauthenticated and polled by load balancers and orchestrators, so it must cost
nearly nothing: the real checks run at most once per CACHE_SECONDS per process (concurrent
callers wait for the one check under way and share its answer), the database connection goes
back to the pool as soon as its check is done, and failures are named, never shown as raw
exception text (which carries hosts, ports, user names and library internals). The details go
to the log."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

WORKER_QUEUES = ("runs", "ingest", "sandbox")
CACHE_SECONDS = 1.0

_lock = threading.Lock()
_cached: tuple[float, dict] | None = None


def _failed(check: str, message: str) -> dict:
    logger.warning("readiness: %s check failed", check, exc_info=True)
    return {"ok": False, "error": message}


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception:  # noqa: BLE001 (readiness reports failures instead of raising them)
        return _failed("database", "the database is unreachable")
    finally:
        connection.close()


def _redis() -> dict:
    from apps.core.redis_client import get_redis

    try:
        get_redis().ping()
        return {"ok": True}
    except Exception:  # noqa: BLE001
        return _failed("redis", "Redis is unreachable")


def _workers() -> dict:
    from apps.core.queue import served_queues

    try:
        replies = served_queues(timeout=1.0)
    except Exception:  # noqa: BLE001
        return _failed("workers", "the workers could not be asked (is the broker reachable?)")
    served = {queue for queues in replies.values() for queue in queues}
    missing = [queue for queue in WORKER_QUEUES if queue not in served]
    return {"ok": not missing, "workers": sorted(replies), "missing_queues": missing}


def _embeddings() -> dict:
    configured = bool(settings.EMBEDDINGS_BASE_URL)
    result = {"ok": True, "required": False, "configured": configured,
              "backend": settings.EMBEDDINGS_BACKEND}
    if configured:
        result["model"] = settings.EMBEDDINGS_MODEL
    else:
        result["note"] = "no embeddings endpoint configured: file_search is keyword-only"
    return result


def _chat() -> dict:
    """Which model answers runs by default (models may also be routed by LLM_ROUTES)."""
    if settings.LLM_EMBEDDED_URL and settings.LLM_BASE_URL == settings.LLM_EMBEDDED_URL:
        return {"ok": True, "backend": "embedded", "model": settings.LLM_EMBEDDED_MODEL,
                "context_tokens": settings.LLM_CONTEXT_TOKENS,
                "note": "a small local demo model: set LLM_BASE_URL (and LLM_API_KEY) for a real one"}
    from urllib.parse import urlsplit

    return {"ok": True, "backend": "remote", "host": urlsplit(settings.LLM_BASE_URL).hostname}


def _check() -> dict:
    checks = {
        "database": _database(),
        "redis": _redis(),
        "workers": _workers(),
        "embeddings": _embeddings(),
        "chat": _chat(),
    }
    ready = all(item["ok"] for item in checks.values() if item.get("required", True))
    return {"ready": ready, "checked_at": round(time.time(), 3), "checks": checks}


def readiness_report() -> dict:
    """The latest report, checked afresh when the cached one is older than CACHE_SECONDS."""
    global _cached
    with _lock:
        if _cached is None or time.monotonic() - _cached[0] >= CACHE_SECONDS:
            report = _check()
            # Aged from when the check finished: the workers' check alone takes a second.
            _cached = (time.monotonic(), report)
        return _cached[1]
