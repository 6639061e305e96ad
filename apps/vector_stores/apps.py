from django.apps import AppConfig


class VectorStoresConfig(AppConfig):
    name = "apps.vector_stores"
    label = "vector_stores"
