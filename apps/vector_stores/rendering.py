from django.db.models import Count, Q, Sum

from apps.vector_stores.models import FileBatch, VectorStore, VectorStoreFile

FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


def file_counts(queryset) -> dict:
    counts = queryset.aggregate(**{status: Count("pk", filter=Q(status=status)) for status in FILE_STATUSES})
    counts["total"] = sum(counts.values())
    return counts


def store_status(store: VectorStore, counts: dict) -> str:
    if store.expired:
        return "expired"
    return "in_progress" if counts["in_progress"] else "completed"


def render_vector_store(store: VectorStore) -> dict:
    files = VectorStoreFile.objects.filter(vector_store=store)
    counts = file_counts(files)
    usage = files.filter(status="completed").aggregate(total=Sum("usage_bytes"))["total"] or 0
    rendered = {
        "id": store.id,
        "object": "vector_store",
        "created_at": store.created_at,
        "name": store.name or "",
        "usage_bytes": usage,
        "file_counts": counts,
        "status": store_status(store, counts),
        "expires_at": store.expires_at,
        "last_active_at": store.last_active_at,
        "metadata": store.metadata,
    }
    if store.expires_after:
        rendered["expires_after"] = store.expires_after
    return rendered


def render_store_file(entry: VectorStoreFile) -> dict:
    return {
        "id": entry.file_id,
        "object": "vector_store.file",
        "usage_bytes": entry.usage_bytes,
        "created_at": entry.created_at,
        "vector_store_id": entry.vector_store_id,
        "status": entry.status,
        "last_error": entry.last_error,
        "chunking_strategy": entry.chunking_strategy,
        "attributes": entry.attributes or {},
    }


def render_batch(batch: FileBatch) -> dict:
    counts = file_counts(VectorStoreFile.objects.filter(file_batches=batch))
    if counts["in_progress"]:
        status = "in_progress"
    elif batch.cancelled and counts["cancelled"]:  # a cancel that stopped nothing changes nothing
        status = "cancelled"
    elif counts["failed"] and not counts["completed"]:
        status = "failed"
    else:
        status = "completed"
    return {
        "id": batch.id,
        "object": "vector_store.files_batch",
        "created_at": batch.created_at,
        "vector_store_id": batch.vector_store_id,
        "status": status,
        "file_counts": counts,
    }
