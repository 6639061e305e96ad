"""Vector stores, their files and file batches. Ingestion itself runs on the `ingest` queue."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.core.errors import InvalidRequestError, not_found
from apps.core.fields import UNSET
from apps.core.models import Project, unix_now
from apps.core.queue import INGEST_TASK, enqueue
from apps.files.models import File
from apps.files.services import require_file, require_files
from apps.vector_stores.chunking import AUTO_CHUNKING, max_overlap, static_strategy
from apps.vector_stores.models import FileBatch, VectorStore, VectorStoreFile

THREAD_STORE_EXPIRY = {"anchor": "last_active_at", "days": 7}
DAY = 86_400


def get_store(project: Project, store_id: str, param: str | None = None) -> VectorStore:
    store = VectorStore.objects.owned(project, store_id)
    if store is None:
        raise not_found("vector store", store_id, param=param)
    return store


def require_vector_stores(project: Project, store_ids: Iterable[str], param: str) -> None:
    wanted = list(store_ids)
    found = set(VectorStore.objects.restrict(project).filter(pk__in=wanted).values_list("pk", flat=True))
    for index, store_id in enumerate(wanted):
        if store_id not in found:
            raise InvalidRequestError(
                f"Invalid '{param}[{index}]': no vector store found with id '{store_id}'.",
                param=f"{param}[{index}]")


def resolve_chunking(strategy: dict | None, param: str = "chunking_strategy") -> dict:
    """`auto` is stored (and echoed) as static 800/400; static overlap is 0 to half the size."""
    if not strategy or strategy.get("type") == "auto":
        return AUTO_CHUNKING
    static = strategy["static"]
    size, overlap = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    if overlap < 0:
        raise InvalidRequestError(
            f"Invalid '{param}.static.chunk_overlap_tokens': must not be negative, but got {overlap}.",
            param=f"{param}.static.chunk_overlap_tokens", code="invalid_value")
    if overlap > max_overlap(size):
        raise InvalidRequestError(
            f"Invalid '{param}.static.chunk_overlap_tokens': must not exceed half of "
            f"max_chunk_size_tokens ({max_overlap(size)}), but got {overlap}.",
            param=f"{param}.static.chunk_overlap_tokens", code="invalid_value")
    return static_strategy(size, overlap)


def _expires_at(store: VectorStore) -> int | None:
    if not store.expires_after:
        return None
    anchor = store.last_active_at or store.created_at
    return anchor + int(store.expires_after["days"]) * DAY


def enqueue_ingestion(entry_ids: list[int]) -> None:
    for entry_id in entry_ids:
        enqueue(INGEST_TASK, entry_id)


def _attach(project: Project, store: VectorStore, file_ids: list[str], chunking: dict,
            attributes: dict | None, batch: FileBatch | None = None) -> list[VectorStoreFile]:
    """Attach files (idempotent: a file already in the store is left as it is). A batch links
    every file it names, also files already in the store, whatever other batch they belong to."""
    files = {f.pk: f for f in File.objects.restrict(project).filter(pk__in=file_ids)}
    attached = []
    for file_id in dict.fromkeys(file_ids):
        entry, created = VectorStoreFile.objects.get_or_create(
            vector_store=store, file=files[file_id],
            defaults={"project": project, "chunking_strategy": chunking, "attributes": attributes,
                      "batch": batch})
        if batch is not None:
            batch.store_files.add(entry)
        attached.append(entry)
        if created:
            enqueue_ingestion([entry.pk])
    return attached


def attach_files(project: Project, store: VectorStore, file_ids: list[str]) -> None:
    """Files (already checked to be the caller's) join the store with the `auto` chunking."""
    _attach(project, store, file_ids, AUTO_CHUNKING, None)


def create_store(project: Project, *, file_ids: list[str] | None = None, name: str | None = None,
                 description: str | None = None, metadata: dict | None = None,
                 expires_after: dict | None = None, chunking_strategy: dict | None = None,
                 default_expiry: dict | None = None) -> VectorStore:
    file_ids = list(file_ids or [])
    require_files(project, file_ids, "file_ids")
    chunking = resolve_chunking(chunking_strategy)
    with transaction.atomic():
        store = VectorStore(project=project, name=name, description=description,
                            metadata=metadata or {}, expires_after=expires_after or default_expiry,
                            last_active_at=unix_now())
        store.save()
        store.expires_at = _expires_at(store)
        store.save(update_fields=["expires_at"])
        _attach(project, store, file_ids, chunking, None)
    return store


def create_from_helper(project: Project, helper: dict, *, owner_kind: str) -> VectorStore:
    """`tool_resources.file_search.vector_stores[]`: thread stores expire 7 days after last use."""
    return create_store(
        project, file_ids=helper.get("file_ids"), chunking_strategy=helper.get("chunking_strategy"),
        metadata=helper.get("metadata"),
        default_expiry=THREAD_STORE_EXPIRY if owner_kind == "thread" else None)


def modify_store(project: Project, store_id: str, *, name: str | None = UNSET,
                 metadata: dict | None = UNSET, expires_after: dict | None = UNSET) -> VectorStore:
    store = get_store(project, store_id)
    if name is not UNSET:
        store.name = name
    if metadata is not UNSET:
        store.metadata = metadata or {}
    if expires_after is not UNSET:
        store.expires_after = expires_after
        store.expires_at = _expires_at(store)
    store.save()
    return store


def lock_store_files(**filters) -> None:
    """Ingestion stores a file's chunks while holding its row's lock: a delete takes the locks
    first, so no chunk can land between the cascade's chunk delete and the row's own."""
    list(VectorStoreFile.objects.select_for_update().filter(**filters).values_list("pk", flat=True))


def delete_store(project: Project, store_id: str) -> str:
    store = get_store(project, store_id)
    with transaction.atomic():
        lock_store_files(vector_store=store)
        store.delete()  # chunks and file links cascade
    return store_id


def touch(store_ids: list[str]) -> None:
    """A run used these stores: their expiry window starts again."""
    now = unix_now()
    for store in VectorStore.objects.filter(pk__in=store_ids, expired=False):
        store.last_active_at = now
        store.expires_at = _expires_at(store)
        store.save(update_fields=["last_active_at", "expires_at"])


# -- vector store files --------------------------------------------------------------------
def get_store_file(project: Project, store_id: str, file_id: str) -> VectorStoreFile:
    store = get_store(project, store_id)
    entry = VectorStoreFile.objects.filter(vector_store=store, file_id=file_id).first()
    if entry is None:
        raise not_found("file", file_id)
    return entry


def create_store_file(project: Project, store_id: str, *, file_id: str,
                      chunking_strategy: dict | None = None,
                      attributes: dict | None = None) -> VectorStoreFile:
    store = get_store(project, store_id)
    require_file(project, file_id, "file_id")
    chunking = resolve_chunking(chunking_strategy)
    with transaction.atomic():
        return _attach(project, store, [file_id], chunking, attributes)[0]


def list_store_files(project: Project, store_id: str, status: str | None,
                     batch: FileBatch | None = None) -> QuerySet:
    queryset = VectorStoreFile.objects.filter(vector_store=get_store(project, store_id))
    if batch is not None:
        queryset = queryset.filter(file_batches=batch)
    if status:
        if status not in ("in_progress", "completed", "failed", "cancelled"):
            raise InvalidRequestError(
                f"Invalid value: '{status}'. Supported values are: 'in_progress', 'completed', "
                "'failed' and 'cancelled'.", param="filter", code="invalid_value")
        queryset = queryset.filter(status=status)
    return queryset


def update_store_file(project: Project, store_id: str, file_id: str, *,
                      attributes: dict | None) -> VectorStoreFile:
    entry = get_store_file(project, store_id, file_id)
    entry.attributes = attributes
    entry.save(update_fields=["attributes"])
    return entry


def delete_store_file(project: Project, store_id: str, file_id: str) -> str:
    entry = get_store_file(project, store_id, file_id)
    with transaction.atomic():
        lock_store_files(pk=entry.pk)
        entry.delete()
    return file_id


def store_file_content(project: Project, store_id: str, file_id: str) -> dict:
    entry = get_store_file(project, store_id, file_id)
    texts = list(entry.chunks.order_by("index").values_list("text", "token_start", "token_end"))
    # Chunks overlap; the page shows each chunk's text as stored.
    return {"object": "vector_store.file_content.page",
            "data": [{"type": "text", "text": text} for text, _, _ in texts],
            "has_more": False, "next_page": None}


# -- batches -------------------------------------------------------------------------------
def get_batch(project: Project, store_id: str, batch_id: str) -> FileBatch:
    batch = FileBatch.objects.restrict(project).filter(vector_store_id=store_id, pk=batch_id).first()
    if batch is None:
        get_store(project, store_id)
        raise not_found("file batch", batch_id)
    return batch


def create_batch(project: Project, store_id: str, *, file_ids: list[str] | None = None,
                 files: list[dict] | None = None, chunking_strategy: dict | None = None,
                 attributes: dict | None = None) -> FileBatch:
    """`files` items are {file_id, chunking_strategy?, attributes?}, each with its own strategy."""
    store = get_store(project, store_id)
    if file_ids and files:
        raise InvalidRequestError("'file_ids' and 'files' are mutually exclusive; give only one.",
                                  param="files")
    if files:
        items = [(f["file_id"], resolve_chunking(f.get("chunking_strategy"), f"files[{i}].chunking_strategy"),
                  f.get("attributes")) for i, f in enumerate(files)]
        require_files(project, [item[0] for item in items], "files", ".file_id")
    else:
        if not file_ids:
            raise InvalidRequestError("Missing required parameter: 'file_ids'.", param="file_ids",
                                      code="missing_required_parameter")
        require_files(project, file_ids, "file_ids")
        chunking = resolve_chunking(chunking_strategy)
        items = [(file_id, chunking, attributes) for file_id in file_ids]
    with transaction.atomic():
        batch = FileBatch.objects.create(project=project, vector_store=store)
        for file_id, chunking, item_attributes in items:
            try:
                with transaction.atomic():
                    _attach(project, store, [file_id], chunking, item_attributes, batch=batch)
            except IntegrityError:
                continue
    return batch


def cancel_batch(project: Project, store_id: str, batch_id: str) -> FileBatch:
    """Stop the batch's files still in progress; a batch with none left keeps its status."""
    batch = get_batch(project, store_id, batch_id)
    with transaction.atomic():
        batch = FileBatch.objects.select_for_update().get(pk=batch.pk)
        stopped = VectorStoreFile.objects.filter(file_batches=batch, status="in_progress").update(
            status="cancelled")
        if stopped and not batch.cancelled:
            batch.cancelled = True
            batch.save(update_fields=["cancelled"])
    return batch


def expire_due_stores(now: int | None = None) -> int:
    """Beat: stores past their expiry become `expired` and lose their chunks."""
    from apps.vector_stores.models import Chunk

    now = now or unix_now()
    due = list(VectorStore.objects.filter(expired=False, expires_at__lte=now).values_list("pk", flat=True))
    for store_id in due:
        with transaction.atomic():
            VectorStore.objects.filter(pk=store_id).update(expired=True)
            Chunk.objects.filter(vector_store_id=store_id).delete()
    return len(due)


INGESTION_DEADLINE_SECONDS = 1800
# A file waiting in the queue behind a large batch is not stalled; one that never starts is.
INGESTION_QUEUE_DEADLINE_SECONDS = 86_400


def fail_stalled_ingestion(now: int | None = None) -> int:
    """Files whose ingestion never finished (its worker died) do not stay `in_progress`. The
    deadline counts from when a worker started on the file, not from when it was attached, so
    the last files of a big batch get the same time as the first."""
    now_ns = (now or unix_now()) * 1_000_000_000
    stalled = VectorStoreFile.objects.filter(
        status="in_progress", ingest_started_ns__lt=now_ns - INGESTION_DEADLINE_SECONDS * 1_000_000_000,
    ).update(status="failed", last_error={
        "code": "server_error", "message": "Processing the file did not finish in time."})
    never_started = VectorStoreFile.objects.filter(
        status="in_progress", ingest_started_ns=None,
        created_ns__lt=now_ns - INGESTION_QUEUE_DEADLINE_SECONDS * 1_000_000_000,
    ).update(status="failed", last_error={
        "code": "server_error", "message": "No worker started processing the file in time."})
    return stalled + never_started
