"""A vector store file's chunking strategy, in one place for the API (which checks what a caller
asks for) and ingestion (which applies what was stored). Pure: the ingest child imports it."""

from __future__ import annotations

# OpenAI's `auto`: stored and echoed as this static strategy.
MAX_CHUNK_SIZE_TOKENS = 800
CHUNK_OVERLAP_TOKENS = 400
SMALLEST_CHUNK_TOKENS = 100
LARGEST_CHUNK_TOKENS = 4096


def static_strategy(max_chunk_size_tokens: int, chunk_overlap_tokens: int) -> dict:
    return {"type": "static", "static": {"max_chunk_size_tokens": max_chunk_size_tokens,
                                         "chunk_overlap_tokens": chunk_overlap_tokens}}


AUTO_CHUNKING = static_strategy(MAX_CHUNK_SIZE_TOKENS, CHUNK_OVERLAP_TOKENS)


def max_overlap(max_chunk_size_tokens: int) -> int:
    """Windows overlap by at most half their size (OpenAI's rule)."""
    return max_chunk_size_tokens // 2


def stored_sizes(strategy: dict | None) -> tuple[int, int]:
    """(size, overlap) of a stored strategy; the `auto` figures where a field is missing."""
    static = (strategy or {}).get("static") or {}
    return (static.get("max_chunk_size_tokens", MAX_CHUNK_SIZE_TOKENS),
            static.get("chunk_overlap_tokens", CHUNK_OVERLAP_TOKENS))
