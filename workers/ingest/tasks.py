"""The `ingest` queue: parse → chunk → embed → store, one vector store file per task."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from workers.time_limits import limits

logger = logging.getLogger(__name__)


@shared_task(name="workers.ingest.tasks.ingest_file", ignore_result=True, **limits("ingest"))
def ingest_file(entry_id: int) -> None:
    from workers.ingest.pipeline import ingest

    ingest(entry_id)


@shared_task(name="workers.ingest.tasks.expire_vector_stores", ignore_result=True, **limits("sweep"))
def expire_vector_stores() -> int:
    from apps.vector_stores.services import expire_due_stores, fail_stalled_ingestion

    fail_stalled_ingestion()
    with transaction.atomic():
        return expire_due_stores()
