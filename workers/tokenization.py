"""Token counting that works offline: tiktoken's encodings are taken from the `bpe-openai`
package (same files, same hashes) and placed where tiktoken looks for its cache, named by the
sha1 of the URL tiktoken would otherwise download from."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path

ENCODING_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def default_cache_dir() -> Path:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    return Path(os.environ.get("DATA_DIR") or ".data") / "tiktoken"


def cache_file_name(encoding: str) -> str:
    return hashlib.sha1(ENCODING_URLS[encoding].encode()).hexdigest()


def ensure_offline_encodings(cache_dir: Path | None = None) -> Path:
    """Fill the tiktoken cache from bpe-openai (idempotent, atomic) and point tiktoken at it."""
    import importlib.util

    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    # Only the package's data files are needed; importing it would load its own tokenizers.
    package = importlib.util.find_spec("bpe_openai")
    source_dir = Path(next(iter(package.submodule_search_locations))) / "data"
    for encoding in ENCODING_URLS:
        target = directory / cache_file_name(encoding)
        if target.exists():
            continue
        data = gzip.decompress((source_dir / f"{encoding}.tiktoken.gz").read_bytes())
        if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256[encoding]:
            raise RuntimeError(f"bpe-openai's {encoding} does not match tiktoken's expected hash")
        with tempfile.NamedTemporaryFile(dir=directory, delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
    return directory


def encoding_name_for_model(model: str) -> str:
    legacy = ("gpt-4-", "gpt-4", "gpt-3.5", "text-embedding-")
    if model.startswith(legacy) and not model.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5")):
        return "cl100k_base"
    return "o200k_base"


@cache
def get_encoding(name: str):
    ensure_offline_encodings()
    import tiktoken

    return tiktoken.get_encoding(name)


def encoding_for_model(model: str):
    return get_encoding(encoding_name_for_model(model))


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    if not text:
        return 0
    return len(encoding_for_model(model).encode(text, disallowed_special=()))
