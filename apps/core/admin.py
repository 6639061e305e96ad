import time

from django.contrib import admin
from django.utils.html import format_html_join

from apps.core.limits_report import usage_lines
from apps.core.models import ApiKey, Project


class CreatedFilter(admin.SimpleListFilter):
    """Objects keep their creation time as nanoseconds (`created_ns`): filter by age."""

    title = "created"
    parameter_name = "created"
    WINDOWS = {"1h": ("Past hour", 3600), "24h": ("Past 24 hours", 86400),
               "7d": ("Past 7 days", 7 * 86400), "30d": ("Past 30 days", 30 * 86400)}

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.WINDOWS.items()]

    def queryset(self, request, queryset):
        window = self.WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        return queryset.filter(created_ns__gte=(time.time() - window[1]) * 1_000_000_000)


class ReadOnlyAdmin(admin.ModelAdmin):
    """API objects change only through the API's services: the admin shows them, and its
    actions (where a model has any) call those services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
    search_fields = ("id", "name", "project__id", "project__name")
    readonly_fields = ("id", "key_hash", "redacted", "created_at")
