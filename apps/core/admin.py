from django.contrib import admin

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
    readonly_fields = ("id",)
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("id", "redacted", "name", "project", "revoked", "created_at")
    list_filter = ("revoked", "project")
    readonly_fields = ("id", "key_hash", "redacted", "created_at")
