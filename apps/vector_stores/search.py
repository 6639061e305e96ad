"""Hybrid retrieval: a filtered vector search (pgvector HNSW with iterative scans, so filters
never starve results) fused with Postgres full-text search, the best candidates reranked when a
reranker is configured, then `score_threshold` and the result limit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from apps.core.errors import InvalidRequestError
from apps.vector_stores.embeddings import embed_texts
from apps.vector_stores.models import Chunk
from apps.vector_stores.reranking import rerank, reranker_configured

EMBEDDING_WEIGHT = 0.7
TEXT_WEIGHT = 0.3
CANDIDATES = 50
RERANK_CANDIDATES = 30
_WORD = re.compile(r"[A-Za-z0-9]+")


@dataclass
class Hit:
    chunk_id: int
    file_id: str
    filename: str
    text: str
    score: float
    attributes: dict


_COMPARISONS = {"eq": "", "gt": "__gt", "gte": "__gte", "lt": "__lt", "lte": "__lte"}


def bound_queries(query: str | list) -> None:
    """Each query costs an embedding call and two SQL statements: cap how many one request
    sends (SEARCH_MAX_QUERIES) and how long each is (SEARCH_MAX_QUERY_CHARS)."""
    most, longest = settings.SEARCH_MAX_QUERIES, settings.SEARCH_MAX_QUERY_CHARS
    queries = query if isinstance(query, list) else [query]
    if len(queries) > most:
        raise InvalidRequestError(
            f"Invalid 'query': array too long. Expected an array with maximum length {most}, but "
            f"got an array with length {len(queries)} instead.", param="query",
            code="array_above_max_length")
    for index, text in enumerate(queries):
        if isinstance(text, str) and len(text) > longest:
            name = f"query[{index}]" if isinstance(query, list) else "query"
            raise InvalidRequestError(
                f"Invalid '{name}': string too long. Expected a string with maximum length "
                f"{longest}, but got a string with length {len(text)} instead.", param=name,
                code="string_above_max_length")


def bound_filters(filters: object) -> None:
    """Nesting (SEARCH_MAX_FILTER_DEPTH) and comparisons (SEARCH_MAX_FILTER_COMPARISONS) of a
    search filter, checked before the schema validator or `filter_q` recurse into it."""
    deepest, most = settings.SEARCH_MAX_FILTER_DEPTH, settings.SEARCH_MAX_FILTER_COMPARISONS
    comparisons = 0
    pending: list[tuple[object, str, int]] = [(filters, "filters", 1)]
    while pending:
        node, name, depth = pending.pop()
        if not isinstance(node, dict) or not isinstance(node.get("filters"), list):
            comparisons += 1
            if comparisons > most:
                raise InvalidRequestError(
                    f"Invalid 'filters': too many comparisons. Expected at most {most} "
                    "comparison filters in one search.", param="filters", code="invalid_value")
            continue
        if depth > deepest:
            raise InvalidRequestError(
                f"Invalid '{name}': filters nested too deeply. Expected at most {deepest} levels "
                "of compound filters.", param=name, code="invalid_value")
        pending.extend((inner, f"{name}.filters[{index}]", depth + 1)
                       for index, inner in enumerate(node["filters"]))


def filter_q(spec: dict, prefix: str = "vector_store_file__attributes__") -> Q:
    """ComparisonFilter / CompoundFilter → a Q over the files' attributes."""
    kind = spec.get("type", "eq")
    if kind in ("and", "or"):
        parts = [filter_q(inner, prefix) for inner in spec.get("filters") or []]
        combined = Q()
        for part in parts:
            combined = combined & part if kind == "and" else combined | part
        return combined
    key, value = spec["key"], spec["value"]
    if kind == "ne":
        return ~Q(**{f"{prefix}{key}": value})
    if kind in ("in", "nin"):
        values = value if isinstance(value, list) else [value]
        match = Q(**{f"{prefix}{key}__in": values})
        return match if kind == "in" else ~match
    return Q(**{f"{prefix}{key}{_COMPARISONS[kind]}": value})


_STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "did", "do", "does",
    "for", "from", "had", "has", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of",
    "on", "or", "please", "tell", "that", "the", "their", "there", "these", "this", "to",
    "was", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you",
    "your", "about", "give", "find", "show", "explain",
])


def rewrite_query(query: str) -> str:
    """`rewrite_query`: a question becomes the keywords worth searching for."""
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOPWORDS]
    return " ".join(words) or query


def _tsquery(query: str) -> str:
    words = [w.lower() for w in _WORD.findall(query)]
    return " | ".join(dict.fromkeys(words))


def _reranked(queries: list[str], candidates: list[tuple[int, float]],
              chunks: dict[int, Chunk]) -> dict[int, float] | None:
    """The reranker's relevance (the best over the queries) for each candidate, or None."""
    if not candidates or not reranker_configured():
        return None
    ids = [chunk_id for chunk_id, _ in candidates]
    best = dict.fromkeys(ids, 0.0)
    for query in queries:
        scores = rerank(query, [chunks[chunk_id].text for chunk_id in ids])
        if scores is None:
            return None
        for chunk_id, score in zip(ids, scores, strict=True):
            best[chunk_id] = max(best[chunk_id], score)
    return best


def search(store_ids: list[str], queries: list[str], *, max_results: int = 10,
           score_threshold: float = 0.0, filters: dict | None = None) -> list[Hit]:
    base = Chunk.objects.filter(vector_store_id__in=store_ids,
                                vector_store_file__status="completed")
    if filters:
        base = base.filter(filter_q(filters))
    vectors = embed_texts(queries, kind="query")
    scored: dict[int, dict[str, float]] = {}
    with transaction.atomic():
        if vectors is not None:
            with connection.cursor() as cursor:
                # pgvector 0.8: keep scanning the HNSW graph until filtered results suffice.
                cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                cursor.execute("SET LOCAL hnsw.ef_search = %s", [settings.SEARCH_EF_SEARCH])
            from pgvector.django import CosineDistance

            for vector in vectors:
                rows = (base.exclude(embedding=None)
                        .annotate(distance=CosineDistance("embedding", vector))
                        .order_by("distance").values_list("pk", "distance")[:CANDIDATES])
                for chunk_id, distance in rows:
                    similarity = max(0.0, 1.0 - float(distance))
                    entry = scored.setdefault(chunk_id, {"vector": 0.0, "text": 0.0})
                    entry["vector"] = max(entry["vector"], similarity)
        for query in queries:
            expression = _tsquery(query)
            if not expression:
                continue
            from django.contrib.postgres.search import SearchQuery, SearchRank

            search_query = SearchQuery(expression, search_type="raw", config="english")
            rows = (base.filter(search_vector=search_query)
                    .annotate(rank=SearchRank("search_vector", search_query, cover_density=True,
                                              normalization=32))
                    .order_by("-rank").values_list("pk", "rank")[:CANDIDATES])
            rows = list(rows)
            top = max((float(rank) for _, rank in rows), default=0.0) or 1.0
            for chunk_id, rank in rows:
                entry = scored.setdefault(chunk_id, {"vector": 0.0, "text": 0.0})
                entry["text"] = max(entry["text"], float(rank) / top)
    if vectors is None:
        fused = {chunk_id: parts["text"] for chunk_id, parts in scored.items()}
    else:
        fused = {chunk_id: EMBEDDING_WEIGHT * parts["vector"] + TEXT_WEIGHT * parts["text"]
                 for chunk_id, parts in scored.items()}
    candidates = sorted(fused.items(), key=lambda item: -item[1])[:max(RERANK_CANDIDATES, max_results)]
    chunks = {c.pk: c for c in Chunk.objects.filter(pk__in=[cid for cid, _ in candidates])
              .select_related("file", "vector_store_file")}
    scores = _reranked(queries, candidates, chunks) or dict(candidates)
    ranked = sorted((item for item in scores.items() if item[1] >= score_threshold),
                    key=lambda item: -item[1])[:max_results]
    return [Hit(chunk_id=cid, file_id=chunks[cid].file_id, filename=chunks[cid].file.filename,
                text=chunks[cid].text, score=round(min(1.0, score), 6),
                attributes=chunks[cid].vector_store_file.attributes or {})
            for cid, score in ranked]

