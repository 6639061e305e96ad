"""Hostile files on the real `ingest` worker: each ends `failed` with a precise last_error, the
worker lives on and ingests the next file, and the limits hold in the parse process itself."""

from __future__ import annotations

import io
import time

import pytest

from tests.support.hostile import docx_bomb, looping_doc, many_tokens


def _wait_done(client, store_id: str, file_id: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while (entry := client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)).status \
            == "in_progress":
        assert time.monotonic() < deadline, "ingestion did not finish"
        time.sleep(0.1)
    return entry


def _ingest(client, name: str, data: bytes):
    store = client.vector_stores.create()
    uploaded = client.files.create(file=(name, io.BytesIO(data)), purpose="assistants")
    client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
    return _wait_done(client, store.id, uploaded.id)


def test_a_doc_whose_piece_table_loops_fails_at_once(client):
    started = time.monotonic()
    entry = _ingest(client, "loop.doc", looping_doc())
    assert entry.status == "failed"
    assert entry.last_error.code == "invalid_file"
    assert "formatting block of size -3" in entry.last_error.message
    assert time.monotonic() - started < 20


def test_a_docx_bomb_is_refused_before_inflating_and_the_worker_goes_on(client, other_client):
    entry = _ingest(client, "bomb.docx", docx_bomb(300 << 20))
    assert entry.status == "failed"
    assert entry.last_error.code == "invalid_file"
    assert "inflates to more than the 268435456-byte limit" in entry.last_error.message
    assert "word/document.xml" in entry.last_error.message
    # The same worker ingests another project's file right after.
    fine = _ingest(other_client, "fine.txt", b"ordinary words about gardens")
    assert fine.status == "completed"


def test_a_file_over_five_million_tokens_fails_naming_the_limit(client):
    entry = _ingest(client, "long.txt", many_tokens(5_000_100))
    assert entry.status == "failed"
    assert entry.last_error.message == (
        "The file has 5000100 tokens, more than the 5000000-token limit per file.")


def test_a_task_redelivered_after_killing_its_worker_is_not_tried_again(client, orm):
    """acks_late hands a message whose worker died to the next worker. A file that already
    used its attempts (each of which took a worker down) fails instead of being parsed again."""
    from django.conf import settings

    from apps.vector_stores import services
    from apps.vector_stores.models import VectorStoreFile

    store = client.vector_stores.create()
    uploaded = client.files.create(file=("killer.txt", io.BytesIO(b"words")), purpose="assistants")
    entry = VectorStoreFile.objects.create(
        vector_store_id=store.id, file_id=uploaded.id,
        project_id=_project_of(uploaded.id),
        chunking_strategy=services.AUTO_CHUNKING,
        ingest_attempts=settings.INGEST_MAX_ATTEMPTS, ingest_started_ns=time.time_ns())
    services.enqueue_ingestion([entry.pk])  # the redelivery
    result = _wait_done(client, store.id, uploaded.id, timeout=30)
    assert result.status == "failed"
    assert result.last_error.message == (
        f"Processing the file stopped its worker {settings.INGEST_MAX_ATTEMPTS} times; "
        "it is not tried again.")
    assert not VectorStoreFile.objects.get(pk=entry.pk).chunks.exists()


def _project_of(file_id: str) -> str:
    from apps.files.models import File

    return File.objects.get(pk=file_id).project_id


def test_the_stall_deadline_counts_from_when_ingestion_starts(client, orm):
    """A file that waited in the queue longer than the deadline, then started, is not failed;
    one whose ingestion started longer ago than the deadline is."""
    from apps.vector_stores import services
    from apps.vector_stores.models import VectorStoreFile

    store = client.vector_stores.create()
    files = [client.files.create(file=(f"s{i}.txt", io.BytesIO(b"w")), purpose="assistants")
             for i in range(2)]
    project_id = _project_of(files[0].id)
    old = time.time_ns() - (services.INGESTION_DEADLINE_SECONDS + 60) * 1_000_000_000
    queued_long = VectorStoreFile.objects.create(
        vector_store_id=store.id, file_id=files[0].id, project_id=project_id, created_ns=old,
        ingest_started_ns=time.time_ns())
    stalled = VectorStoreFile.objects.create(
        vector_store_id=store.id, file_id=files[1].id, project_id=project_id, created_ns=old,
        ingest_started_ns=old)
    services.fail_stalled_ingestion()
    assert VectorStoreFile.objects.get(pk=queued_long.pk).status == "in_progress"
    assert VectorStoreFile.objects.get(pk=stalled.pk).status == "failed"
    VectorStoreFile.objects.filter(pk=queued_long.pk).update(status="cancelled")


def test_the_sweepers_run_on_a_queue_a_busy_ingest_worker_cannot_block(stack):
    """fail_stalled_ingestion and store expiry are routed off the `ingest` queue."""
    from assistants_project.celery import app

    route = app.amqp.router.route({}, "workers.ingest.tasks.expire_vector_stores")
    assert route["queue"].name == "runs"
    assert app.amqp.router.route({}, "workers.files.tasks.expire_files")["queue"].name == "runs"
    assert app.amqp.router.route({}, "workers.ingest.tasks.ingest_file")["queue"].name == "ingest"


# -- the parse process's own limits, with limits small enough to hit quickly ------------------
@pytest.fixture
def limits():
    from workers.ingest.isolated import ParseLimits

    return ParseLimits(memory_bytes=400 << 20, cpu_seconds=60, wall_seconds=60,
                       zip_max_bytes=256 << 20, max_tokens=5_000_000)


def _parse(tmp_path, name: str, data: bytes, limits):
    from workers.ingest.isolated import parse_in_child

    path = tmp_path / name
    path.write_bytes(data)
    return parse_in_child(str(path), name, 800, 400, limits)


def test_memory_past_the_limit_is_reported_and_this_process_lives(tmp_path, limits):
    from workers.ingest.isolated import LimitExceeded

    with pytest.raises(LimitExceeded) as raised:
        _parse(tmp_path, "big.docx", docx_bomb(200 << 20), limits)
    assert str(raised.value) == ("Parsing the file needed more than the 419430400-byte memory "
                                 "limit (400 MiB).")


def test_cpu_time_past_the_limit_is_reported(tmp_path, limits):
    from dataclasses import replace

    from workers.ingest.isolated import LimitExceeded

    with pytest.raises(LimitExceeded) as raised:
        _parse(tmp_path, "slow.txt", many_tokens(6_000_000), replace(limits, cpu_seconds=1))
    assert str(raised.value) == "Parsing the file used more than the 1 s CPU-time limit."


def test_wall_clock_past_the_limit_is_reported(tmp_path, limits):
    from dataclasses import replace

    from workers.ingest.isolated import LimitExceeded

    started = time.monotonic()
    with pytest.raises(LimitExceeded) as raised:
        _parse(tmp_path, "slow.txt", many_tokens(2_000_000), replace(limits, wall_seconds=0.5))
    assert str(raised.value) == "Parsing the file took longer than the 0.5 s limit."
    assert time.monotonic() - started < 3


def test_an_ordinary_file_comes_back_in_chunks(tmp_path, limits):
    chunks = _parse(tmp_path, "ok.txt", b"hello there, general reader", limits)
    assert [(c.index, c.text) for c in chunks] == [(0, "hello there, general reader")]
