"""`manage.py reembed`: rebuild every vector store's chunk vectors with the current embedding
model (after EMBEDDINGS_MODEL / EMBEDDINGS_DIMENSIONS / EMBEDDINGS_BACKEND changed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.vector_stores import dimensions
from apps.vector_stores.embeddings import embed_texts, embeddings_configured
from apps.vector_stores.models import Chunk
from ops import embedded, embedded_models

BATCH = 64


class Command(BaseCommand):
    help = "Re-embed every chunk of every vector store with the configured embedding model."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--missing", action="store_true",
                            help="only chunks without a vector (resumes an interrupted reembed)")

    def handle(self, *args, missing: bool = False, **options) -> None:
        if self._run_with_embedded_services(missing):
            return
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

    def _run_with_embedded_services(self, missing: bool) -> bool:
        """A mismatch stops `make run` at migrate, so this also runs on its own: it starts the
        embedded Postgres and embedding model when nothing serves them, and runs itself again
        against them. False when everything it needs is already there."""
        env = dict(os.environ)
        data_dir = settings.DATA_DIR
        started = False
        with ExitStack() as cleanup:
            if not env.get("DATABASE_URL") and not (embedded.pg_dir(data_dir) / "postmaster.pid").exists():
                env["DATABASE_URL"] = embedded.start_postgres(data_dir)
                cleanup.callback(embedded.stop_postgres, data_dir)
                started = True
            if embedded_models.wants_embedded_embeddings(env):
                (data_dir / "logs").mkdir(parents=True, exist_ok=True)
                log = cleanup.enter_context(open(data_dir / "logs" / "models-reembed.log", "ab"))
                try:
                    server = embedded_models.start_model_server(
                        env, data_dir, chat=False, embeddings=True, stdout=log, name="reembed")
                except embedded_models.ModelsUnavailable as error:
                    raise CommandError(str(error)) from error
                cleanup.callback(server.process.wait, 30)
                cleanup.callback(server.process.terminate)
                env.update(server.env())
                started = True
            if not started:
                return False
            argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "reembed",
                    *(["--missing"] if missing else [])]
            if subprocess.run(argv, env=env).returncode != 0:
                raise CommandError("reembed failed (see above).")
        return True

    def _progress(self, done: int, total: int, started: float) -> None:
        width = 30
        filled = width * done // total if total else width
        rate = done / max(time.monotonic() - started, 1e-6)
        self.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} chunks, "
                          f"{rate:.1f} chunks/s", ending="")
        self.stderr.flush()
