from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HalfVectorField, HnswIndex

from apps.core.models import ProjectQuerySet, ProjectScoped, monotonic_ns, remember_deleted
from apps.files.models import File


class VectorStore(ProjectScoped):
    id_kind = "vector_store"

    name = models.TextField(null=True, blank=True)  # the spec sets no maximum length
    description = models.TextField(null=True, blank=True)
    expires_after = models.JSONField(null=True, blank=True)
    expires_at = models.IntegerField(null=True, blank=True)
    last_active_at = models.IntegerField(null=True, blank=True)
    expired = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["project", "created_ns"])]

    def __str__(self) -> str:
        return f"{self.id} {self.name or ''}".strip()


class FileBatch(ProjectScoped):
    id_kind = "file_batch"

    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="batches")
    cancelled = models.BooleanField(default=False)
    # Every store file the batch asked for, including files already in the store; a file can
    # belong to several batches. (VectorStoreFile.batch only records the batch that added it.)
    store_files = models.ManyToManyField("VectorStoreFile", related_name="file_batches", blank=True)

    class Meta:
        verbose_name_plural = "file batches"

    def __str__(self) -> str:
        return self.id


class VectorStoreFile(models.Model):
    """A file attached to a vector store; its public id is the file's id."""

    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="files")
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("core.Project", on_delete=models.CASCADE, related_name="+")
    batch = models.ForeignKey(FileBatch, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="files")
    created_ns = models.BigIntegerField(default=monotonic_ns)
    status = models.CharField(max_length=16, default="in_progress", db_index=True)
    last_error = models.JSONField(null=True, blank=True)
    usage_bytes = models.BigIntegerField(default=0)
    chunking_strategy = models.JSONField(default=dict)
    attributes = models.JSONField(null=True, blank=True)
    # Set when a worker starts on the file (wall-clock ns): the stall deadline counts from here,
    # and the attempts stop a file that kills its worker from being redelivered for ever.
    ingest_started_ns = models.BigIntegerField(null=True, blank=True)
    ingest_attempts = models.PositiveSmallIntegerField(default=0)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["vector_store", "file"], name="one_file_per_store")]
        indexes = [models.Index(fields=["vector_store", "created_ns"])]

    def __str__(self) -> str:
        return f"{self.file_id} in {self.vector_store_id} ({self.status})"

    @property
    def created_at(self) -> int:
        return self.created_ns // 1_000_000_000

    def delete(self, *args, **kwargs):
        remember_deleted(type(self), self.project_id, self.file_id, self.created_ns)
        return super().delete(*args, **kwargs)


class Chunk(models.Model):
    vector_store_file = models.ForeignKey(VectorStoreFile, on_delete=models.CASCADE,
                                          related_name="chunks")
    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="+")
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="+")
    index = models.IntegerField()
    text = models.TextField()
    token_start = models.IntegerField()
    token_end = models.IntegerField()
    embedding = HalfVectorField(dimensions=settings.EMBEDDINGS_DIMENSIONS, null=True)
    search_vector = SearchVectorField(null=True)

    class Meta:
        indexes = [
            HnswIndex(name="chunk_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["halfvec_cosine_ops"]),
            GinIndex(name="chunk_search_vector_gin", fields=["search_vector"]),
            models.Index(fields=["vector_store", "file"]),
        ]


class EmbeddingSpace(models.Model):
    """What the stored chunk vectors were made with (one row): vectors of another model, even
    of the same size, are not comparable (apps/vector_stores/dimensions.py)."""

    model = models.TextField()
    dimensions = models.IntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.model} ({self.dimensions} dimensions)"
