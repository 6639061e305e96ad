"""Token-window chunking like OpenAI's file_search: windows of `max_chunk_size_tokens` that
overlap by `chunk_overlap_tokens`; the document is encoded once."""

from __future__ import annotations

from dataclasses import dataclass

from apps.vector_stores.chunking import (
    CHUNK_OVERLAP_TOKENS,
    LARGEST_CHUNK_TOKENS,
    MAX_CHUNK_SIZE_TOKENS,
    SMALLEST_CHUNK_TOKENS,
    max_overlap,
)
from workers.tokenization import get_encoding

CHUNK_ENCODING = "cl100k_base"


@dataclass
class TextPiece:
    """One token window of a document's text (stored as an `apps.vector_stores.models.Chunk`)."""

    index: int
    text: str
    token_start: int
    token_end: int


def validate_strategy(max_chunk_size_tokens: int, chunk_overlap_tokens: int) -> None:
    if not SMALLEST_CHUNK_TOKENS <= max_chunk_size_tokens <= LARGEST_CHUNK_TOKENS:
        raise ValueError(f"max_chunk_size_tokens must be between {SMALLEST_CHUNK_TOKENS} and "
                         f"{LARGEST_CHUNK_TOKENS}")
    if not 0 <= chunk_overlap_tokens <= max_overlap(max_chunk_size_tokens):
        raise ValueError("chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens")


def _decode(encoding, tokens: list[int]) -> str:
    # A window edge can cut a multi-byte character; drop the partial bytes at the edges
    # rather than invent replacement characters.
    return encoding.decode_bytes(tokens).decode("utf-8", errors="ignore")


def chunk_text(text: str, max_chunk_size_tokens: int = MAX_CHUNK_SIZE_TOKENS,
               chunk_overlap_tokens: int = CHUNK_OVERLAP_TOKENS) -> list[TextPiece]:
    validate_strategy(max_chunk_size_tokens, chunk_overlap_tokens)
    encoding = get_encoding(CHUNK_ENCODING)
    tokens = encoding.encode(text, disallowed_special=())
    if not tokens:
        return []
    step = max_chunk_size_tokens - chunk_overlap_tokens
    chunks = []
    start = 0
    while True:
        end = min(start + max_chunk_size_tokens, len(tokens))
        chunks.append(TextPiece(index=len(chunks), text=_decode(encoding, tokens[start:end]),
                                token_start=start, token_end=end))
        if end == len(tokens):
            return chunks
        start += step
