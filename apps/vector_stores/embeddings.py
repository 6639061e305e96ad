"""Embeddings through any OpenAI-compatible /v1/embeddings endpoint: a remote one, or the
embedded e5 model the stack serves when none is configured. EMBEDDINGS_BACKEND=none (or an
embedded backend that is not running) leaves file_search keyword-only, and /readyz says so."""

from __future__ import annotations

import logging
from functools import cache
from typing import Literal

from django.conf import settings

logger = logging.getLogger(__name__)
BATCH_SIZE = 128
Kind = Literal["query", "passage"]


def embeddings_configured() -> bool:
    return bool(settings.EMBEDDINGS_BASE_URL)


@cache
def _client():
    import openai

    return openai.OpenAI(base_url=settings.EMBEDDINGS_BASE_URL,
                         api_key=settings.EMBEDDINGS_API_KEY or "none", max_retries=3,
                         timeout=settings.LLM_TIMEOUT)


def embed_texts(texts: list[str], kind: Kind = "passage") -> list[list[float]] | None:
    """Vectors for `texts`, in batches; None when no embeddings endpoint is configured.
    Searches embed queries, ingestion passages: models trained with prefixes (e5) get theirs."""
    if not embeddings_configured():
        return None
    prefix = settings.EMBEDDINGS_QUERY_PREFIX if kind == "query" else settings.EMBEDDINGS_PASSAGE_PREFIX
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH_SIZE):
        response = _client().embeddings.create(
            model=settings.EMBEDDINGS_MODEL, input=[prefix + t for t in texts[start:start + BATCH_SIZE]],
            dimensions=settings.EMBEDDINGS_DIMENSIONS)
        vectors += [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
    return vectors
