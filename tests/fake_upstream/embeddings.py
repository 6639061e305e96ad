"""Deterministic embeddings: signed feature hashing of words, L2-normalised, so texts that share
words are close and unrelated texts are not."""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct

_WORD = re.compile(r"[a-z0-9]+")


def embed(text: str, dimensions: int = 256) -> list[float]:
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def to_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))
