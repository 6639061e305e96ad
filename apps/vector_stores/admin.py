from django.contrib import admin

from apps.core.admin import CreatedFilter
from apps.vector_stores.models import FileBatch, VectorStore, VectorStoreFile


class VectorStoreFileInline(admin.TabularInline):
    model = VectorStoreFile
    fields = ("file", "status", "usage_bytes", "last_error", "attributes")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(VectorStore)
class VectorStoreAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "project", "expired", "expires_at")
    list_filter = ("expired", "project", CreatedFilter)
    search_fields = ("id", "name")
    readonly_fields = ("id", "created_ns", "last_active_at")
    inlines = [VectorStoreFileInline]


@admin.register(FileBatch)
class FileBatchAdmin(admin.ModelAdmin):
    list_display = ("id", "vector_store", "cancelled", "project")
    list_filter = ("project", "cancelled", CreatedFilter)
    search_fields = ("id", "vector_store__id")
    readonly_fields = ("id", "created_ns")
