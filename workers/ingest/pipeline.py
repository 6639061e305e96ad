"""Ingestion of one vector store file. The row's status is the state machine: the work is only
kept if the file is still `in_progress` when it is done (a cancel or delete wins). Parsing and
chunking run in a child process under limits (`workers.ingest.isolated`)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.postgres.search import SearchVector
from django.db import transaction
from django.db.models import F

from apps.vector_stores.embeddings import embed_texts
from apps.vector_stores.models import Chunk, VectorStoreFile
from workers.ingest.chunking import validate_strategy
from workers.ingest.isolated import LimitExceeded, ParseLimits, parse_in_child

logger = logging.getLogger(__name__)


def parse_limits() -> ParseLimits:
    return ParseLimits(memory_bytes=settings.INGEST_PARSE_MEMORY_BYTES,
                       cpu_seconds=settings.INGEST_PARSE_CPU_SECONDS,
                       wall_seconds=settings.INGEST_PARSE_WALL_SECONDS,
                       zip_max_bytes=settings.INGEST_ZIP_MAX_BYTES,
                       max_tokens=settings.INGEST_MAX_FILE_TOKENS)


def _finish(entry_id: int, status: str, **fields) -> bool:
    return bool(VectorStoreFile.objects.filter(pk=entry_id, status="in_progress")
                .update(status=status, **fields))


def ingest(entry_id: int) -> None:
    try:
        _ingest(entry_id)
    except SoftTimeLimitExceeded:
        _finish(entry_id, "failed", last_error={
            "code": "server_error", "message": "Processing the file did not finish in time."})
        raise
    except Exception:
        # A bug (or a row this code cannot handle) must not leave the file `in_progress` until
        # the stall deadline: fail it now, then let the error be logged as what it is.
        _finish(entry_id, "failed", last_error={
            "code": "server_error", "message": "The server had an error while processing the file."})
        raise


def _claim(entry_id: int) -> bool:
    """Count this attempt and start the file's deadline. A message redelivered because its
    worker died mid-file (acks_late) is tried again at most INGEST_MAX_ATTEMPTS times in all:
    after that the file fails instead of taking worker after worker down with it."""
    claimed = VectorStoreFile.objects.filter(
        pk=entry_id, status="in_progress", ingest_attempts__lt=settings.INGEST_MAX_ATTEMPTS,
    ).update(ingest_attempts=F("ingest_attempts") + 1, ingest_started_ns=time.time_ns())
    if claimed:
        return True
    _finish(entry_id, "failed", last_error={"code": "server_error", "message": (
        f"Processing the file stopped its worker {settings.INGEST_MAX_ATTEMPTS} times; "
        "it is not tried again.")})
    return False


@contextlib.contextmanager
def _local_path(field) -> Iterator[str]:
    """A path the parse process can open: the stored file itself when storage is local, else a
    copy streamed to a temporary file."""
    try:
        path = field.path
    except NotImplementedError:
        path = None
    if path is not None:
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="ingest-") as copy, field.open("rb") as source:
        shutil.copyfileobj(source, copy, 1 << 20)
        copy.flush()
        yield copy.name


def _ingest(entry_id: int) -> None:
    entry = VectorStoreFile.objects.select_related("file").filter(pk=entry_id).first()
    if entry is None or entry.status != "in_progress" or not _claim(entry_id):
        return
    strategy = entry.chunking_strategy.get("static") or {}
    size, overlap = strategy.get("max_chunk_size_tokens", 800), strategy.get("chunk_overlap_tokens", 400)
    validate_strategy(size, overlap)
    try:
        with _local_path(entry.file.content) as path:
            pieces = parse_in_child(path, entry.file.filename, size, overlap, parse_limits())
    except LimitExceeded as error:
        _finish(entry_id, "failed", last_error={"code": error.code, "message": str(error)})
        return
    try:
        vectors = embed_texts([piece.text for piece in pieces])
    except Exception as error:  # noqa: BLE001 (any upstream failure is this file's failure)
        logger.warning("embedding %s failed: %s", entry.file_id, error)
        _finish(entry_id, "failed", last_error={"code": "server_error",
                                                "message": f"Embedding the file failed: {error}"})
        return
    with transaction.atomic():
        locked = VectorStoreFile.objects.select_for_update().filter(pk=entry_id, status="in_progress").first()
        if locked is None:
            return
        Chunk.objects.filter(vector_store_file=locked).delete()
        Chunk.objects.bulk_create([
            Chunk(vector_store_file=locked, vector_store_id=locked.vector_store_id,
                  file_id=locked.file_id, index=piece.index, text=piece.text,
                  token_start=piece.token_start, token_end=piece.token_end,
                  embedding=vectors[piece.index] if vectors is not None else None)
            for piece in pieces
        ], batch_size=500)
        Chunk.objects.filter(vector_store_file=locked).update(
            search_vector=SearchVector("text", config="english"))
        _finish(entry_id, "completed", usage_bytes=sum(len(piece.text.encode()) for piece in pieces),
                last_error=None)
