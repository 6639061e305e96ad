"""Ingestion of one vector store file. The row's status is the state machine: the work is only
kept if the file is still `in_progress` when it is done (a cancel or delete wins)."""

from __future__ import annotations

import logging

from django.contrib.postgres.search import SearchVector
from django.db import transaction

from apps.vector_stores.embeddings import embed_texts
from apps.vector_stores.models import Chunk, VectorStoreFile
from workers.ingest.chunking import chunk_text
from workers.ingest.parsing import ParseError, extract_text

logger = logging.getLogger(__name__)


def _finish(entry_id: int, status: str, **fields) -> bool:
    return bool(VectorStoreFile.objects.filter(pk=entry_id, status="in_progress")
                .update(status=status, **fields))


def ingest(entry_id: int) -> None:
    try:
        _ingest(entry_id)
    except Exception:
        # A bug (or a row this code cannot handle) must not leave the file `in_progress` until
        # the stall deadline: fail it now, then let the error be logged as what it is.
        _finish(entry_id, "failed", last_error={
            "code": "server_error", "message": "The server had an error while processing the file."})
        raise


def _ingest(entry_id: int) -> None:
    entry = VectorStoreFile.objects.select_related("file").filter(pk=entry_id).first()
    if entry is None or entry.status != "in_progress":
        return
    try:
        with entry.file.content.open("rb") as handle:
            data = handle.read()
        text = extract_text(data, entry.file.filename)
    except ParseError as error:
        _finish(entry_id, "failed", last_error={"code": error.code, "message": str(error)})
        return
    strategy = entry.chunking_strategy.get("static") or {}
    chunks = chunk_text(text, strategy.get("max_chunk_size_tokens", 800),
                        strategy.get("chunk_overlap_tokens", 400))
    try:
        vectors = embed_texts([chunk.text for chunk in chunks])
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
                  file_id=locked.file_id, index=chunk.index, text=chunk.text,
                  token_start=chunk.token_start, token_end=chunk.token_end,
                  embedding=vectors[chunk.index] if vectors is not None else None)
            for chunk in chunks
        ], batch_size=500)
        Chunk.objects.filter(vector_store_file=locked).update(
            search_vector=SearchVector("text", config="english"))
        _finish(entry_id, "completed", usage_bytes=sum(len(c.text.encode()) for c in chunks),
                last_error=None)
