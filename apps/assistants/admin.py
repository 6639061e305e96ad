from django.contrib import admin

from apps.assistants.models import Assistant
from apps.core.admin import CreatedFilter


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "model", "project", "created_at")
    list_filter = ("project", "model", CreatedFilter)
    search_fields = ("id", "name", "instructions")
    readonly_fields = ("id", "created_ns")
