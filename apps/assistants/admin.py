from django.contrib import admin

from apps.assistants.models import Assistant


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "model", "project", "created_at")
    list_filter = ("project", "model")
    search_fields = ("id", "name", "instructions")
    readonly_fields = ("id", "created_ns")
