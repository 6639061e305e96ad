"""The chunk vectors' model and size against the configured ones. The column's size is a
database fact (halfvec(N), needed by the HNSW index), fixed at the first migrate; vectors of
another model are not comparable even at the same size. So after every `migrate`: with no
vectors stored the column follows the settings; with vectors of another model or size start-up
stops and names `manage.py reembed`."""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from apps.vector_stores.models import Chunk, EmbeddingSpace

REEMBED_COMMAND = ".venv/bin/python manage.py reembed"
_TABLE = Chunk._meta.db_table
_INDEX = "chunk_embedding_hnsw"


class EmbeddingSpaceMismatch(Exception):
    pass


def wanted() -> tuple[str, int]:
    return settings.EMBEDDINGS_MODEL, settings.EMBEDDINGS_DIMENSIONS


def column_dimensions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass "
                       "AND attname = 'embedding'", [_TABLE])
        return cursor.fetchone()[0]


def resize_column(dimensions: int) -> None:
    """halfvec(N) for the new size; every stored vector is dropped (they are re-made)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX IF EXISTS "{_INDEX}"')
        cursor.execute(f'ALTER TABLE "{_TABLE}" ALTER COLUMN embedding TYPE halfvec({int(dimensions)}) '
                       "USING NULL")
        cursor.execute(f'CREATE INDEX "{_INDEX}" ON "{_TABLE}" USING hnsw (embedding halfvec_cosine_ops) '
                       "WITH (m = 16, ef_construction = 64)")


def record(model: str, dimensions: int) -> None:
    with transaction.atomic():
        EmbeddingSpace.objects.select_for_update().all().delete()
        EmbeddingSpace.objects.create(model=model, dimensions=dimensions)


def stored() -> tuple[str, int] | None:
    """(model, size) of the stored vectors; None when no chunk has one."""
    if not Chunk.objects.exclude(embedding=None).exists():
        return None
    space = EmbeddingSpace.objects.first()
    # Vectors from before the model was recorded: all that is known is their size.
    return (space.model, space.dimensions) if space else (settings.EMBEDDINGS_MODEL, column_dimensions())


def check_embedding_space() -> None:
    """Align an empty column with the settings, or refuse vectors of another model or size."""
    if settings.EMBEDDINGS_BACKEND == "none":
        return  # keyword-only: stored vectors are kept for when a model comes back, never read
    tables = connection.introspection.table_names()
    if _TABLE not in tables or EmbeddingSpace._meta.db_table not in tables:
        return  # migrated back below these tables
    model, dimensions = wanted()
    have = stored()
    if have is None:
        if column_dimensions() != dimensions:
            resize_column(dimensions)
        record(model, dimensions)
        return
    if have != (model, dimensions):
        raise EmbeddingSpaceMismatch(
            f"The stored chunk vectors were made by {have[0]} ({have[1]} dimensions), but the "
            f"settings ask for EMBEDDINGS_MODEL={model} with EMBEDDINGS_DIMENSIONS={dimensions}: "
            f"searches would compare unrelated vectors. Run `{REEMBED_COMMAND}` to rebuild every "
            "vector store's vectors with the current model, or restore the previous settings.")
    if not EmbeddingSpace.objects.exists():
        record(model, dimensions)
