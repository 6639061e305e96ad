"""Token-window chunking like OpenAI's file_search: windows of `max_chunk_size_tokens` that
overlap by `chunk_overlap_tokens`; the document is encoded once."""

from __future__ import annotations

from dataclasses import dataclass

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
    if not 100 <= max_chunk_size_tokens <= 4096:
        raise ValueError("max_chunk_size_tokens must be between 100 and 4096")
    if not 0 <= chunk_overlap_tokens <= max_chunk_size_tokens // 2:
        raise ValueError("chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens")


def _decode(encoding, tokens: list[int]) -> str:
    # A window edge can cut a multi-byte character; drop the partial bytes at the edges
    # rather than invent replacement characters.
    return encoding.decode_bytes(tokens).decode("utf-8", errors="ignore")


def chunk_text(text: str, max_chunk_size_tokens: int = 800, chunk_overlap_tokens: int = 400) -> list[TextPiece]:
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
