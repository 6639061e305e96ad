"""The parse process: one file in, its chunks out, under the limits it is given. Started by
`workers.ingest.isolated` as `python -m workers.ingest.child`, with a JSON job on stdin; writes
one JSON object on stdout: {"chunks": [[index, text, token_start, token_end], ...]} or
{"error": {"code", "message"}}. No Django here: only the parsers and the tokenizer."""

from __future__ import annotations

import json
import os
import resource
import sys
import zipfile

ZIP_EXTENSIONS = (".docx", ".pptx")


def _limit(job: dict) -> None:
    memory = int(job["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(job["cpu_seconds"])
    # The soft limit sends SIGXCPU, which the parent reports; the hard one is the backstop.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _check_zip(path: str, extension: str, max_bytes: int) -> None:
    """A .docx or .pptx is a zip: its parts' declared sizes are summed before any is inflated
    (Python's zip reader never inflates a part past its declared size)."""
    from workers.ingest.parsing import InvalidFileError

    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidFileError(f"The {extension} file could not be read: {exc}") from exc
    total = 0
    for part in parts:
        total += part.file_size
        if total > max_bytes:
            raise InvalidFileError(
                f"The {extension} file inflates to more than the {max_bytes}-byte limit "
                f"(part '{part.filename}' alone is {part.file_size} bytes).")


def _work(job: dict) -> dict:
    from pathlib import PurePosixPath

    from workers.ingest.chunking import chunk_text
    from workers.ingest.parsing import ParseError, extract_text
    from workers.tokenization import get_encoding

    extension = PurePosixPath(job["filename"].lower()).suffix
    try:
        if extension in ZIP_EXTENSIONS:
            _check_zip(job["path"], extension, int(job["zip_max_bytes"]))
        with open(job["path"], "rb") as handle:
            data = handle.read()
        text = extract_text(data, job["filename"])
    except ParseError as error:
        return {"error": {"code": error.code, "message": str(error)}}
    del data
    max_tokens = int(job["max_tokens"])
    count = len(get_encoding("cl100k_base").encode(text, disallowed_special=()))
    if count > max_tokens:
        return {"error": {"code": "invalid_file", "message": (
            f"The file has {count} tokens, more than the {max_tokens}-token limit per file.")}}
    chunks = chunk_text(text, job["max_chunk_size_tokens"], job["chunk_overlap_tokens"])
    return {"chunks": [[c.index, c.text, c.token_start, c.token_end] for c in chunks]}


def main() -> int:
    job = json.loads(sys.stdin.read())
    _limit(job)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    try:
        result = _work(job)
    except MemoryError:
        result = None
    if result is None:
        # Whatever the parser held is garbage now; a short constant message still fits.
        out.write('{"error": {"code": "invalid_file", "message": "memory"}}')
        out.flush()
        return 3
    try:
        out.write(json.dumps(result))
    except MemoryError:
        out.write('{"error": {"code": "invalid_file", "message": "memory"}}')
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
