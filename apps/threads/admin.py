from django.contrib import admin

from apps.core.admin import CreatedFilter, ReadOnlyAdmin
from apps.threads.models import Message, Thread


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("id", "role", "text_preview", "status", "run_id", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_ns",)
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="text")
    def text_preview(self, message: Message) -> str:
        text = message.text()
        return text if len(text) <= 300 else text[:300] + "…"


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "created_at")
    list_filter = ("project", CreatedFilter)
    search_fields = ("id", "messages__id", "runs__id")
    search_help_text = "A thread, message or run id."
    readonly_fields = ("id", "created_ns")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "thread", "role", "status", "run_id", "project", "created_at")
    list_filter = ("project", "role", "status", CreatedFilter)
    search_fields = ("id", "thread__id", "run_id", "assistant_id")
    readonly_fields = ("id", "created_ns", "thread", "token_count")
    list_select_related = ("project", "thread")
