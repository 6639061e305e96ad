"""What the fake upstream answers: scripted replies, failures and latency."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Reply:
    text: str | None = None
    tool_calls: list[tuple[str, str]] | list[tuple[str, str, str]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    chunk_words: int = 1
    chunk_chars: int | None = None  # split the text every n characters instead of by words
    first_token_delay: float = 0.0
    per_chunk_delay: float = 0.0
    status: int = 200
    retry_after: float | None = None
    hang: bool = False
    disconnect_after_chunks: int | None = None
