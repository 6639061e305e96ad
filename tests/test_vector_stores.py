"""Vector stores, ingestion on the `ingest` worker, hybrid search, and file_search in runs, with
the fake upstream's deterministic embeddings."""

from __future__ import annotations

import io
from pathlib import Path

import openai
import pytest

from tests.fake_upstream import Reply
from tests.support.documents import make_docx, make_pdf

DOCS = {
    "volcanoes.txt": "Volcanoes erupt when magma rises through the crust. Lava flows and ash clouds follow.",
    "baking.md": "# Baking bread\nKnead the dough, let the yeast rise, then bake the loaf at 220 degrees.",
    "tides.pdf": "Ocean tides are caused by the gravitational pull of the moon and the sun.",
    "finance.docx": "Quarterly revenue grew twelve percent while operating costs fell.",
}


def _upload(client, name: str, text: str):
    if name.endswith(".pdf"):
        data = make_pdf(text)
    elif name.endswith(".docx"):
        data = make_docx([text])
    else:
        data = text.encode()
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants")


@pytest.fixture
def knowledge(client):
    """A vector store with four known documents, fully ingested."""
    store = client.vector_stores.create(name="knowledge")
    files = [(name, text, _upload(client, name, text)) for name, text in DOCS.items()]
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[f.id for _, _, f in files], poll_interval_ms=50)
    assert batch.file_counts.completed == len(DOCS), batch.file_counts
    return store, {name: uploaded for name, _, uploaded in files}


def test_a_mixed_batch_upload_counts_every_outcome(client):
    store = client.vector_stores.create(name="mixed", metadata={"k": "v"})
    files = [(name, io.BytesIO(make_pdf(text) if name.endswith(".pdf") else
                               make_docx([text]) if name.endswith(".docx") else text.encode()))
             for name, text in DOCS.items()]
    files.append(("legacy.doc", io.BytesIO(
        (Path(__file__).parent / "fixtures" / "word97-unicode.doc").read_bytes())))
    files.append(("archive.xyz", io.BytesIO(b"\x00\x01 not a document")))
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id, files=files, poll_interval_ms=50)
    assert batch.object == "vector_store.files_batch"
    assert batch.status == "completed"
    counts = batch.file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.cancelled, counts.total) == (5, 1, 0, 0, 6)

    failed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="failed")
    assert len(failed.data) == 1 and failed.data[0].last_error.code == "unsupported_file"
    refreshed = client.vector_stores.retrieve(store.id)
    assert refreshed.status == "completed" and refreshed.file_counts.completed == 5
    assert refreshed.usage_bytes > 0 and refreshed.metadata == {"k": "v"}
    found = client.vector_stores.search(store.id, query="zephyrine").data
    assert found[0].filename == "legacy.doc"


def test_upload_and_poll_a_single_file_and_read_its_content(client):
    store = client.vector_stores.create()
    entry = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("notes.txt", io.BytesIO(b"Penguins live in Antarctica.")),
        poll_interval_ms=50)
    assert entry.status == "completed" and entry.object == "vector_store.file"
    assert entry.chunking_strategy.type == "static"
    assert entry.chunking_strategy.static.max_chunk_size_tokens == 800
    assert entry.chunking_strategy.static.chunk_overlap_tokens == 400
    content = client.vector_stores.files.content(entry.id, vector_store_id=store.id)
    assert [part.text for part in content] == ["Penguins live in Antarctica."]
    again = client.vector_stores.files.create(vector_store_id=store.id, file_id=entry.id)
    assert again.id == entry.id  # attaching the same file twice is idempotent
    assert client.vector_stores.retrieve(store.id).file_counts.total == 1


def test_chunking_yields_the_expected_chunks_and_overlaps(client, orm):
    from apps.vector_stores.models import Chunk

    words = " ".join(f"w{i}" for i in range(1500))  # a known document
    from workers.tokenization import get_encoding

    total = len(get_encoding("cl100k_base").encode(words))
    store = client.vector_stores.create()
    auto = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("auto.txt", io.BytesIO(words.encode())), poll_interval_ms=50)
    static_file = client.files.create(file=("static.txt", io.BytesIO(words.encode())), purpose="assistants")
    static = client.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=static_file.id, poll_interval_ms=50,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100,
                                                        "chunk_overlap_tokens": 20}})
    for entry, size, overlap in ((auto, 800, 400), (static, 100, 20)):
        spans = list(Chunk.objects.filter(vector_store_file__vector_store_id=store.id,
                                          file_id=entry.id).order_by("index")
                     .values_list("token_start", "token_end"))
        step = size - overlap
        expected = 1 + max(0, -(-(total - size) // step))
        assert len(spans) == expected
        assert spans[0] == (0, size) and spans[-1][1] == total
        assert all(b[0] - a[0] == step and a[1] - b[0] == overlap for a, b in zip(spans[:-1], spans[1:], strict=True))
    with pytest.raises(openai.BadRequestError) as raised:
        client.vector_stores.files.create(vector_store_id=store.id, file_id=static_file.id,
                                          chunking_strategy={"type": "static", "static": {
                                              "max_chunk_size_tokens": 100, "chunk_overlap_tokens": 51}})
    assert "chunk_overlap_tokens" in raised.value.body["param"]


@pytest.mark.parametrize(("query", "expected"), [
    ("why do volcanoes erupt with lava", "volcanoes.txt"),
    ("how to bake a loaf of bread with yeast", "baking.md"),
    ("what causes ocean tides moon", "tides.pdf"),
    ("quarterly revenue and operating costs", "finance.docx"),
])
def test_search_ranks_the_relevant_document_first(client, knowledge, query, expected):
    store, _ = knowledge
    results = client.vector_stores.search(store.id, query=query, max_num_results=3)
    assert results.data[0].filename == expected
    assert 0 < results.data[0].score <= 1
    assert len(results.data) <= 3


def test_search_honours_filters_and_score_threshold(client, knowledge):
    store, files = knowledge
    client.vector_stores.files.update(files["tides.pdf"].id, vector_store_id=store.id,
                                      attributes={"topic": "science", "year": 2024})
    client.vector_stores.files.update(files["volcanoes.txt"].id, vector_store_id=store.id,
                                      attributes={"topic": "science", "year": 2020})
    science = client.vector_stores.search(store.id, query="moon lava dough revenue",
                                          filters={"type": "eq", "key": "topic", "value": "science"})
    assert {r.filename for r in science.data} == {"tides.pdf", "volcanoes.txt"}
    recent = client.vector_stores.search(store.id, query="moon lava", filters={
        "type": "and", "filters": [{"type": "eq", "key": "topic", "value": "science"},
                                   {"type": "gte", "key": "year", "value": 2023}]})
    assert [r.filename for r in recent.data] == ["tides.pdf"]
    everything = client.vector_stores.search(store.id, query="volcanoes erupt magma lava")
    strict = client.vector_stores.search(store.id, query="volcanoes erupt magma lava",
                                         ranking_options={"score_threshold": 0.5})
    assert len(strict.data) < len(everything.data)
    assert all(r.score >= 0.5 for r in strict.data)


def test_vector_store_crud_and_file_detach(client):
    store = client.vector_stores.create(name="crud", expires_after={"anchor": "last_active_at", "days": 2})
    assert store.expires_at == store.last_active_at + 2 * 86400
    renamed = client.vector_stores.update(store.id, name="renamed", expires_after=None)
    assert renamed.name == "renamed" and renamed.expires_at is None
    entry = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("a.txt", io.BytesIO(b"alpha beta")), poll_interval_ms=50)
    assert [f.id for f in client.vector_stores.files.list(store.id)] == [entry.id]
    deleted = client.vector_stores.files.delete(entry.id, vector_store_id=store.id)
    assert deleted.deleted and deleted.object == "vector_store.file.deleted"
    assert client.files.retrieve(entry.id).id == entry.id  # detaching keeps the file
    assert client.vector_stores.search(store.id, query="alpha").data == []
    assert store.id in [s.id for s in client.vector_stores.list()]
    gone = client.vector_stores.delete(store.id)
    assert gone.deleted and gone.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_a_run_answers_from_a_document_with_a_file_citation(client, knowledge, upstream):
    store, files = knowledge
    assistant = client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})

    def respond(request):
        tool_results = [m for m in request["messages"] if m["role"] == "tool"]
        if not tool_results:
            return Reply(tool_calls=[("file_search", '{"queries": ["what causes ocean tides"]}')])
        marker = tool_results[-1]["content"].split("\n", 1)[0]
        return Reply(text=f"Tides come from the moon's pull{marker}.")

    upstream.set_responder(respond)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What causes tides?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"
    sent = upstream.chat_requests()[0]
    assert [t["function"]["name"] for t in sent["tools"]] == ["file_search"]
    assert "【" in sent["messages"][0]["content"]  # the instructions explain the markers

    message = client.beta.threads.messages.list(thread.id).data[0]
    text = message.content[0].text
    assert len(text.annotations) == 1
    annotation = text.annotations[0]
    assert annotation.type == "file_citation"
    assert annotation.file_citation.file_id == files["tides.pdf"].id
    assert text.value[annotation.start_index:annotation.end_index] == annotation.text
    assert annotation.text.startswith("【0:0†tides.pdf")

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search" and call.file_search.results[0].file_name == "tides.pdf"
    assert call.file_search.results[0].content is None
    with_content = client.beta.threads.runs.steps.retrieve(
        steps[0].id, thread_id=thread.id, run_id=run.id,
        include=["step_details.tool_calls[*].file_search.results[*].content"])
    assert "moon" in with_content.step_details.tool_calls[0].file_search.results[0].content[0].text


def test_uncited_sources_get_no_annotation(client, knowledge, upstream):
    store, _ = knowledge
    assistant = client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    upstream.enqueue(Reply(tool_calls=[("file_search", '{"queries": ["bread"]}')]),
                     Reply(text="Knead and bake."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Bread?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.annotations == []


def test_thread_helpers_and_attachments_create_an_expiring_thread_store(client):
    uploaded = client.files.create(file=("memo.txt", io.BytesIO(b"The launch is on Friday.")),
                                   purpose="assistants")
    thread = client.beta.threads.create(tool_resources={"file_search": {"vector_stores": [
        {"file_ids": [uploaded.id]}]}})
    store_id = thread.tool_resources.file_search.vector_store_ids[0]
    store = client.vector_stores.retrieve(store_id)
    assert store.expires_after.days == 7 and store.expires_after.anchor == "last_active_at"

    bare = client.beta.threads.create()
    client.beta.threads.messages.create(bare.id, role="user", content="see attached", attachments=[
        {"file_id": uploaded.id, "tools": [{"type": "file_search"}]}])
    attached = client.beta.threads.retrieve(bare.id).tool_resources.file_search.vector_store_ids
    assert len(attached) == 1
    assert [f.id for f in client.vector_stores.files.list(attached[0])] == [uploaded.id]


def test_expired_vector_stores_are_cleaned_up(client, orm):
    from apps.vector_stores.models import Chunk, VectorStore
    from workers.ingest.tasks import expire_vector_stores

    store = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 1})
    client.vector_stores.files.upload_and_poll(vector_store_id=store.id, poll_interval_ms=50,
                                               file=("x.txt", io.BytesIO(b"expiring words")))
    VectorStore.objects.filter(pk=store.id).update(expires_at=1)
    assert expire_vector_stores() >= 1
    assert client.vector_stores.retrieve(store.id).status == "expired"
    assert not Chunk.objects.filter(vector_store_id=store.id).exists()


def test_another_projects_vector_store_is_invisible(client, other_client):
    store = client.vector_stores.create(name="private")
    with pytest.raises(openai.NotFoundError):
        other_client.vector_stores.retrieve(store.id)
    with pytest.raises(openai.NotFoundError):
        other_client.vector_stores.search(store.id, query="anything")
    assert store.id not in [s.id for s in other_client.vector_stores.list()]


def test_keyword_search_works_without_an_embeddings_endpoint(knowledge, orm, settings):
    """This process has no EMBEDDINGS_BASE_URL: the same search is keyword-only."""
    from apps.vector_stores.search import search

    assert settings.EMBEDDINGS_BASE_URL == ""
    store, _ = knowledge
    hits = search([store.id], ["gravitational pull of the moon"], max_results=2)
    assert hits[0].filename == "tides.pdf" and hits[0].score == 1.0


def test_a_cancelled_batch_stops_what_has_not_finished(client):
    store = client.vector_stores.create()
    ids = [client.files.create(file=(f"c{i}.txt", io.BytesIO(f"cancel me {i}".encode() * 2000)),
                               purpose="assistants").id for i in range(12)]
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    assert batch.file_counts.in_progress + batch.file_counts.completed == 12
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    counts = cancelled.file_counts
    assert counts.in_progress == 0 and counts.total == 12
    assert counts.cancelled + counts.completed == 12
    assert cancelled.status == ("cancelled" if counts.cancelled else "completed")
    import time

    time.sleep(1.0)  # ingestion tasks that were already queued must not resurrect cancelled files
    again = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert again.file_counts.cancelled == counts.cancelled


def test_rewrite_query_searches_for_the_questions_keywords(client, knowledge):
    store, _ = knowledge
    page = client.vector_stores.search(store.id, query="What is it that causes the ocean tides?",
                                       rewrite_query=True)
    assert page.search_query == ["causes ocean tides"]
    assert page.data[0].filename == "tides.pdf"


def test_a_run_on_a_thread_whose_vector_store_expired_fails(client, upstream, orm):
    from apps.vector_stores.models import VectorStore
    from workers.ingest.tasks import expire_vector_stores

    uploaded = client.files.create(file=("memo.txt", io.BytesIO(b"The launch is on Friday.")),
                                   purpose="assistants")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "When is the launch?"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [uploaded.id]}]}})
    store_id = thread.tool_resources.file_search.vector_store_ids[0]
    VectorStore.objects.filter(pk=store_id).update(expires_at=1)
    expire_vector_stores()
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    upstream.enqueue(Reply(text="unreachable"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "failed"
    assert run.last_error.code == "invalid_prompt"
    assert store_id in run.last_error.message and "expired" in run.last_error.message
    assert upstream.chat_requests() == []


def _expect_bad_overlap(call, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        call()
    error = raised.value.body
    assert raised.value.status_code == 400
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_value", param)
    assert "-1" in error["message"]


def test_a_negative_chunk_overlap_is_refused_on_every_create(client):
    uploaded = _upload(client, "overlap.txt", "some words to chunk")
    negative = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": -1}}
    param = "chunking_strategy.static.chunk_overlap_tokens"
    before = {s.id for s in client.vector_stores.list(limit=100)}
    _expect_bad_overlap(lambda: client.vector_stores.create(file_ids=[uploaded.id], chunking_strategy=negative),
                        param)
    assert {s.id for s in client.vector_stores.list(limit=100)} == before  # nothing was made
    store = client.vector_stores.create()
    _expect_bad_overlap(lambda: client.vector_stores.files.create(
        vector_store_id=store.id, file_id=uploaded.id, chunking_strategy=negative), param)
    _expect_bad_overlap(lambda: client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=[uploaded.id], chunking_strategy=negative), param)
    _expect_bad_overlap(lambda: client.vector_stores.file_batches.create(
        vector_store_id=store.id, files=[{"file_id": uploaded.id, "chunking_strategy": negative}]),
        f"files[0].{param}")
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0
    zero = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    entry = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=uploaded.id,
                                                       chunking_strategy=zero, poll_interval_ms=50)
    assert entry.status == "completed" and entry.chunking_strategy.static.chunk_overlap_tokens == 0


def test_a_file_whose_ingestion_breaks_ends_failed_at_once(client, orm):
    """A row the pipeline cannot chunk (stored before overlaps were checked) fails with
    server_error instead of staying in_progress until the stall deadline."""
    from apps.vector_stores import services
    from apps.vector_stores.models import VectorStoreFile

    store = client.vector_stores.create()
    good = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("good.txt", io.BytesIO(b"fine words")), poll_interval_ms=50)
    broken = _upload(client, "broken.txt", "words the worker cannot chunk")
    entry = VectorStoreFile.objects.create(
        vector_store_id=store.id, file_id=broken.id,
        project_id=VectorStoreFile.objects.get(vector_store_id=store.id, file_id=good.id).project_id,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100,
                                                        "chunk_overlap_tokens": -5}})
    services.enqueue_ingestion([entry.pk])  # no transaction here: sent at once
    import time

    deadline = time.monotonic() + 30  # not files.poll: a regression would poll for 30 minutes
    while (result := client.vector_stores.files.retrieve(broken.id, vector_store_id=store.id)).status \
            == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.status == "failed"
    assert result.last_error.code == "server_error"
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.cancelled, counts.total) == (1, 1, 0, 0, 2)


def test_a_long_name_round_trips_on_create_and_modify(client):
    store = client.vector_stores.create(name="n" * 300, description="d" * 1000)
    assert store.name == "n" * 300
    renamed = client.vector_stores.update(store.id, name="m" * 300)
    assert renamed.name == "m" * 300
    assert client.vector_stores.retrieve(store.id).name == "m" * 300


def test_a_batch_counts_files_already_completed_in_the_store(client):
    store = client.vector_stores.create()
    first_file, second_file = (_upload(client, f"{name}.txt", f"{name} words") for name in ("one", "two"))
    first = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[first_file.id], poll_interval_ms=50)
    assert (first.status, first.file_counts.completed, first.file_counts.total) == ("completed", 1, 1)
    second = client.vector_stores.file_batches.create(vector_store_id=store.id,
                                                      file_ids=[first_file.id, second_file.id])
    assert second.file_counts.total == 2
    assert second.file_counts.completed >= 1  # the file already in the store counts at once
    second = client.vector_stores.file_batches.poll(second.id, vector_store_id=store.id, poll_interval_ms=50)
    assert (second.status, second.file_counts.completed, second.file_counts.total) == ("completed", 2, 2)
    listed = client.vector_stores.file_batches.list_files(second.id, vector_store_id=store.id)
    assert {f.id for f in listed} == {first_file.id, second_file.id}
    again = client.vector_stores.file_batches.retrieve(first.id, vector_store_id=store.id)
    assert (again.file_counts.completed, again.file_counts.total) == (1, 1)
    assert [f.id for f in client.vector_stores.file_batches.list_files(
        first.id, vector_store_id=store.id)] == [first_file.id]
    alone = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[second_file.id], poll_interval_ms=50)
    assert (alone.status, alone.file_counts.completed, alone.file_counts.total) == ("completed", 1, 1)
    assert client.vector_stores.retrieve(store.id).file_counts.total == 2


def test_a_batch_sharing_files_in_progress_leaves_the_earlier_batch_whole(client):
    store = client.vector_stores.create()
    ids = [client.files.create(file=(f"s{i}.txt", io.BytesIO(f"shared words {i} ".encode() * 2000)),
                               purpose="assistants").id for i in range(8)]
    first = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    second = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids[4:])
    assert (first.file_counts.total, second.file_counts.total) == (8, 4)
    first = client.vector_stores.file_batches.poll(first.id, vector_store_id=store.id, poll_interval_ms=50)
    second = client.vector_stores.file_batches.poll(second.id, vector_store_id=store.id, poll_interval_ms=50)
    assert (first.status, first.file_counts.completed, first.file_counts.total) == ("completed", 8, 8)
    assert (second.status, second.file_counts.completed, second.file_counts.total) == ("completed", 4, 4)
    paged = client.vector_stores.file_batches.list_files(first.id, vector_store_id=store.id, limit=3,
                                                         filter="completed")
    assert sorted(f.id for f in paged) == sorted(ids)  # every page, no duplicates
    assert {f.id for f in client.vector_stores.file_batches.list_files(
        second.id, vector_store_id=store.id)} == set(ids[4:])
    assert client.vector_stores.file_batches.list_files(second.id, vector_store_id=store.id,
                                                        filter="failed").data == []


def test_cancelling_a_finished_batch_leaves_it_completed(client):
    store = client.vector_stores.create()
    done = _upload(client, "done.txt", "already processed")
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[done.id], poll_interval_ms=50)
    assert batch.status == "completed"
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "completed"
    assert (cancelled.file_counts.completed, cancelled.file_counts.cancelled) == (1, 0)
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).status == "completed"
    assert client.vector_stores.files.retrieve(done.id, vector_store_id=store.id).status == "completed"


def test_detaching_files_while_paging_carries_on(client):
    store = client.vector_stores.create(name="paging")
    uploaded = [client.files.create(file=(f"p{n}.txt", io.BytesIO(b"x")), purpose="assistants")
                for n in range(7)]
    for file in uploaded:
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file.id)
    detached = [f.id for f in client.vector_stores.files.list(store.id, limit=3)
                if client.vector_stores.files.delete(f.id, vector_store_id=store.id).deleted]
    assert sorted(detached) == sorted(f.id for f in uploaded)


def test_a_configured_reranker_orders_the_hybrid_candidates(client, knowledge, upstream):
    """The stack's reranker is the fake upstream's /rerank: relevance = the share of the
    query's words a chunk holds, so the scores returned are exactly its scores."""
    store, _ = knowledge
    results = client.vector_stores.search(store.id, query="magma bread")
    assert {r.filename for r in results.data[:2]} == {"volcanoes.txt", "baking.md"}
    assert [r.score for r in results.data[:2]] == [0.5, 0.5]
    assert all(r.score == 0.0 for r in results.data[2:])
    asked = upstream.rerank_requests()
    assert asked and asked[-1]["query"] == "magma bread"
    assert any("magma" in document for document in asked[-1]["documents"])
    assert asked[-1]["model"] == "BAAI/bge-reranker-v2-m3"


def test_search_keeps_the_hybrid_order_when_the_reranker_is_down(knowledge, orm, settings):
    from apps.vector_stores.search import search

    settings.RERANK_BASE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    store, _ = knowledge
    hits = search([store.id], ["gravitational pull of the moon"], max_results=2)
    assert hits[0].filename == "tides.pdf"


def test_parallel_searches_cite_each_source_correctly(client, knowledge, upstream):
    store, files = knowledge
    assistant = client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})

    def respond(request):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            return Reply(tool_calls=[("file_search", '{"queries": ["ocean tides moon"]}'),
                                     ("file_search", '{"queries": ["volcanoes magma lava"]}')])
        first, second = (r["content"].split("\n", 1)[0] for r in results)
        return Reply(text=f"Tides follow the moon{first}; lava is molten rock{second}.")

    upstream.set_responder(respond)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tides and lava?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "completed"
    text = client.beta.threads.messages.list(thread.id).data[0].content[0].text
    cited = [(a.text, a.file_citation.file_id) for a in text.annotations]
    assert [file_id for _, file_id in cited] == [files["tides.pdf"].id, files["volcanoes.txt"].id]
    # Each call numbers its own results, so equal file names can never share a marker.
    assert cited[0][0].startswith("【0:0†") and cited[1][0].startswith("【1:0†")


@pytest.mark.parametrize("target", ["store_file", "store", "file"])
def test_deleting_while_ingestion_stores_chunks_waits_and_succeeds(client, orm, target):
    """Ingestion writes a file's chunks holding the store file's row lock (as
    workers/ingest/pipeline.py does); a delete arriving meanwhile waits for it, then removes the
    new chunks too, instead of failing on their foreign key."""
    import threading
    import time

    from django.db import connection, transaction

    from apps.vector_stores.models import Chunk, VectorStoreFile

    store = client.vector_stores.create()
    uploaded = client.files.create(file=("race.txt", io.BytesIO(b"racing words")), purpose="assistants")
    client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=uploaded.id,
                                               poll_interval_ms=50)
    holding = threading.Event()

    def ingestion_in_flight() -> None:
        try:
            with transaction.atomic():
                entry = VectorStoreFile.objects.select_for_update().get(
                    vector_store_id=store.id, file_id=uploaded.id)
                Chunk.objects.create(vector_store_file=entry, vector_store_id=store.id,
                                     file_id=uploaded.id, index=99, text="late chunk",
                                     token_start=0, token_end=2)
                holding.set()
                time.sleep(1.0)
        finally:
            connection.close()

    writer = threading.Thread(target=ingestion_in_flight)
    writer.start()
    assert holding.wait(10)
    if target == "store_file":
        assert client.vector_stores.files.delete(uploaded.id, vector_store_id=store.id).deleted
    elif target == "store":
        assert client.vector_stores.delete(store.id).deleted
    else:
        assert client.files.delete(uploaded.id).deleted
    writer.join()
    assert not Chunk.objects.filter(vector_store_id=store.id).exists()
