from django.contrib import admin
from django.utils.html import format_html_join

from apps.core.limits_report import usage_lines
from apps.core.models import ApiKey, Project


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("id", "name", "redacted", "created_at", "revoked")
    readonly_fields = ("id", "redacted", "created_at")
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("id", "name")
    readonly_fields = ("id", "current_usage")
    fieldsets = (
        (None, {"fields": ("id", "name", "created_at")}),
        ("Limits (empty: the server's settings)", {"fields": (
            "rate_limit_get_rpm", "rate_limit_post_rpm", "rate_limit_runs_rpm",
            "rate_limit_delete_rpm", "tokens_per_minute", "storage_limit_bytes")}),
        ("Current usage", {"fields": ("current_usage",)}),
    )
    inlines = [ApiKeyInline]

    @admin.display(description="Usage now")
    def current_usage(self, project: Project) -> str:
        if not project.pk:
            return "-"
        return format_html_join("", "<div>{}</div>", ((line,) for line in usage_lines(project)))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("id", "redacted", "name", "project", "revoked", "created_at")
    list_filter = ("revoked", "project")
    readonly_fields = ("id", "key_hash", "redacted", "created_at")
