"""`manage.py reembed`: rebuild every vector store's chunk vectors with the current embedding
model (after EMBEDDINGS_MODEL / EMBEDDINGS_DIMENSIONS / EMBEDDINGS_BACKEND changed)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from apps.vector_stores import dimensions
from apps.vector_stores.embeddings import embed_texts, embeddings_configured
from apps.vector_stores.models import Chunk

BATCH = 64


class Command(BaseCommand):
    help = "Re-embed every chunk of every vector store with the configured embedding model."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--missing", action="store_true",
                            help="only chunks without a vector (resumes an interrupted reembed)")

    def handle(self, *args, missing: bool = False, **options) -> None:
        if not embeddings_configured():
            raise CommandError("No embeddings model is serving (EMBEDDINGS_BACKEND="
                               f"{dimensions.settings.EMBEDDINGS_BACKEND}): set EMBEDDINGS_BASE_URL, or "
                               "run it while `make run` serves the embedded model, with the same DATA_DIR.")
        model, size = dimensions.wanted()
        if dimensions.column_dimensions() != size:
            dimensions.resize_column(size)
        elif not missing:
            # Old vectors go first: until a chunk has its new one, search finds it by keyword.
            Chunk.objects.exclude(embedding=None).update(embedding=None)
        # From here every stored vector is the current model's.
        dimensions.record(model, size)
        pending = Chunk.objects.filter(embedding=None).order_by("pk")
        total = pending.count()
        done = 0
        started = time.monotonic()
        last_pk = 0
        self._progress(0, total, started)
        while True:
            batch = list(pending.filter(pk__gt=last_pk).only("pk", "text")[:BATCH])
            if not batch:
                break
            for chunk, vector in zip(batch, embed_texts([c.text for c in batch]), strict=True):
                chunk.embedding = vector
            Chunk.objects.bulk_update(batch, ["embedding"])
            last_pk = batch[-1].pk
            done += len(batch)
            self._progress(done, total, started)
        self.stderr.write("")
        self.stdout.write(f"Re-embedded {done} chunks with {model} ({size} dimensions).")

    def _progress(self, done: int, total: int, started: float) -> None:
        width = 30
        filled = width * done // total if total else width
        rate = done / max(time.monotonic() - started, 1e-6)
        self.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} chunks, "
                          f"{rate:.1f} chunks/s", ending="")
        self.stderr.flush()
