"""Token counting works offline: encodings come from the bpe-openai package, never the network."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from workers.tokenization import EXPECTED_SHA256, cache_file_name, ensure_offline_encodings

OFFLINE_COUNT = """
import socket
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from workers.tokenization import count_tokens
print(count_tokens("hello world", "gpt-4o"), count_tokens("hello world", "gpt-4"),
      count_tokens("The quick brown fox jumps over the lazy dog.", "gpt-4o"))
"""


def test_counting_tokens_needs_no_network(tmp_path):
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "cache"),
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-c", OFFLINE_COUNT], env=env, capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[2], check=True)
    assert result.stdout.split() == ["2", "2", "10"]


def test_the_cache_is_filled_idempotently_with_tiktokens_expected_files(tmp_path):
    first = ensure_offline_encodings(tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    ensure_offline_encodings(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamps
    for encoding, digest in EXPECTED_SHA256.items():
        data = (tmp_path / cache_file_name(encoding)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
