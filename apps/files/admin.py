from django.contrib import admin

from apps.core.admin import CreatedFilter
from apps.files.models import File


@admin.register(File)
class FileAdmin(admin.ModelAdmin):
    list_display = ("id", "filename", "purpose", "bytes", "project", "created_at")
    list_filter = ("purpose", "project", CreatedFilter)
    search_fields = ("id", "filename")
    readonly_fields = ("id", "created_ns", "bytes", "content", "mime_type")
