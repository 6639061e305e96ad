"""Ingestion throughput: MB/s of text parsed + chunked + stored (chunks, tsvector) by the real
pipeline, for plain text and for a PDF; embedding time reported separately (fake upstream's
/v1/embeddings, 800-token chunks in batches of 128)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ["DATA_DIR"] = str(BASE_DIR / ".data" / "bench-ingest")
os.environ["EMBEDDINGS_BACKEND"] = "none"  # measure parse + chunk + store on their own
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")

RUNS = 3
TEXT_MB = 4


def _document(megabytes: int) -> str:
    sentence = ("The quarterly report shows revenue growth across every region, while costs "
                "fell and the board approved new investment in research. ")
    return sentence * (megabytes * 1024 * 1024 // len(sentence))


def main() -> None:
    from ops.embedded import start_postgres

    start_postgres(Path(os.environ["DATA_DIR"]))
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.core.models import Project
    from apps.files.models import File
    from apps.vector_stores.models import VectorStore, VectorStoreFile
    from apps.vector_stores.services import AUTO_CHUNKING
    from tests.support.documents import make_pdf
    from workers.ingest.chunking import chunk_text
    from workers.ingest.pipeline import ingest

    project, _ = Project.objects.get_or_create(name="bench-ingest")
    store = VectorStore.objects.create(project=project, name="bench")
    text = _document(TEXT_MB)
    samples = {"txt": (text.encode(), "report.txt"),
               "pdf": (make_pdf("\n".join(text[:200_000][i:i + 90] for i in range(0, 200_000, 90))), "report.pdf")}
    for kind, (data, name) in samples.items():
        timings = []
        for _ in range(RUNS):
            file = File(project=project, filename=name, purpose="assistants", bytes=len(data))
            file.save()
            file.content.save(f"bench/{file.pk}", ContentFile(data), save=True)
            entry = VectorStoreFile.objects.create(vector_store=store, file=file, project=project,
                                                   chunking_strategy=AUTO_CHUNKING)
            started = time.perf_counter()
            ingest(entry.pk)
            timings.append(time.perf_counter() - started)
            entry.refresh_from_db()
            assert entry.status == "completed", entry.last_error
            file.delete()
        megabytes = len(data) / 1024 / 1024
        print(f"{kind}: {megabytes:.1f} MB parsed + chunked + stored in {statistics.median(timings):.2f} s "
              f"(median of {RUNS}) = {megabytes / statistics.median(timings):.2f} MB/s")

    import openai

    from tests.fake_upstream import FakeUpstream

    with FakeUpstream() as upstream:
        client = openai.OpenAI(base_url=upstream.base_url, api_key="sk-fake")
        chunks = [chunk.text for chunk in chunk_text(text)]
        started = time.perf_counter()
        for start in range(0, len(chunks), 128):
            client.embeddings.create(model="text-embedding-3-large", input=chunks[start:start + 128],
                                     dimensions=256)
        elapsed = time.perf_counter() - started
        print(f"embedding (fake upstream, reported separately): {len(chunks)} chunks of "
              f"{TEXT_MB} MB in {elapsed:.2f} s = {TEXT_MB / elapsed:.2f} MB/s")


if __name__ == "__main__":
    main()
