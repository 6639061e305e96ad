"""What /readyz reports: can we reach the database, Redis and at least one worker per queue."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

WORKER_QUEUES = ("runs", "ingest", "sandbox")


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001 (readiness reports failures instead of raising them)
        return {"ok": False, "error": str(exc)}


def _redis() -> dict:
    from apps.core.redis_client import get_redis

    try:
        get_redis().ping()
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": str(exc)}


def _workers() -> dict:
    from assistants_project.celery import app

    try:
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": str(exc)}
    served = {queue["name"] for queues in replies.values() for queue in queues}
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


def check_readiness() -> dict:
    return {
        "database": _database(),
        "redis": _redis(),
        "workers": _workers(),
        "embeddings": _embeddings(),
        "chat": _chat(),
    }
