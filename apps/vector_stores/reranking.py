"""Reranking through any Cohere/Jina-style `POST {base}/rerank` endpoint (vLLM, LiteLLM, Text
Embeddings Inference, Jina, Cohere): a cross-encoder reorders the hybrid search's candidates,
as OpenAI's file_search did. Without one configured the fused hybrid score stands; a failing
reranker degrades to it too, since search must keep answering."""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request

from django.conf import settings

logger = logging.getLogger(__name__)


def reranker_configured() -> bool:
    return bool(settings.RERANK_BASE_URL)


def _normalised(scores: list[float]) -> list[float]:
    """Relevance in 0..1: some servers return raw logits rather than probabilities."""
    if all(0.0 <= score <= 1.0 for score in scores):
        return scores
    return [1.0 / (1.0 + math.exp(-score)) for score in scores]


def rerank(query: str, documents: list[str]) -> list[float] | None:
    """A relevance score per document (same order), or None without a usable reranker."""
    if not reranker_configured() or not documents:
        return None
    payload = json.dumps({"model": settings.RERANK_MODEL, "query": query, "documents": documents,
                          "top_n": len(documents)}).encode()
    request = urllib.request.Request(
        settings.RERANK_BASE_URL.rstrip("/") + "/rerank", data=payload, method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {settings.RERANK_API_KEY or 'none'}"})
    try:
        with urllib.request.urlopen(request, timeout=settings.LLM_TIMEOUT) as response:
            results = json.loads(response.read())["results"]
        scores = [0.0] * len(documents)
        for result in results:
            scores[int(result["index"])] = float(result["relevance_score"])
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        logger.warning("reranker unavailable, keeping the hybrid order: %s", exc)
        return None
    return _normalised(scores)
