from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _check_embedding_space(sender, **kwargs) -> None:
    """Every `migrate` (make run, make test, compose's migrate service) checks that the stored
    vectors match the configured embedding model, so a mismatch stops start-up."""
    from django.core.management.base import CommandError

    from apps.vector_stores.dimensions import EmbeddingSpaceMismatch, check_embedding_space

    try:
        check_embedding_space()
    except EmbeddingSpaceMismatch as mismatch:
        raise CommandError(str(mismatch)) from mismatch


class VectorStoresConfig(AppConfig):
    name = "apps.vector_stores"
    label = "vector_stores"

    def ready(self) -> None:
        post_migrate.connect(_check_embedding_space, sender=self)
