from __future__ import annotations

import hashlib
import secrets
import threading
import time

from django.db import models

from apps.core.ids import new_id
from apps.core.sql import first_row

_clock_lock = threading.Lock()
_last_ns = 0


def monotonic_ns() -> int:
    """Wall-clock nanoseconds, strictly increasing within a process, so objects created in one
    request (a thread's initial messages) keep their order in lists."""
    global _last_ns
    with _clock_lock:
        _last_ns = max(_last_ns + 1, time.time_ns())
        return _last_ns


def unix_now() -> int:
    return int(time.time())


def auto() -> str:
    """The `"auto"` default of tool_choice and response_format (a callable, as JSONField wants)."""
    return "auto"


class Project(models.Model):
    id = models.CharField(primary_key=True, max_length=40, editable=False)
    name = models.CharField(max_length=256, unique=True)
    created_at = models.IntegerField(default=unix_now)
    # Limits of this project; empty follows the server's settings (README, "Limits").
    rate_limit_get_rpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="GET requests per minute; empty: RATE_LIMIT_GET_RPM; 0: no limit.")
    rate_limit_post_rpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="POST requests per minute (other than run creation); empty: "
        "RATE_LIMIT_POST_RPM; 0: no limit.")
    rate_limit_runs_rpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Run creations (POST /threads/{id}/runs, POST /threads/runs) per "
        "minute; empty: RATE_LIMIT_RUNS_RPM; 0: no limit.")
    rate_limit_delete_rpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="DELETE requests per minute; empty: RATE_LIMIT_DELETE_RPM; 0: no limit.")
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Prompt + completion tokens per minute, per model; empty: "
        "TOKEN_QUOTA_TPM; 0: no quota.")
    storage_limit_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Total bytes of stored files; empty: STORAGE_QUOTA_BYTES when "
        "STORAGE_QUOTA_ENABLED, else none; 0: no quota.")

    def save(self, *args, **kwargs):
        if not self.id:
            self.id = new_id("project")
            kwargs.setdefault("force_insert", True)
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.name


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A project's API key; only its SHA-256 is stored, the key itself is shown once."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=256, blank=True, default="")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    redacted = models.CharField(max_length=32, editable=False)
    created_at = models.IntegerField(default=unix_now)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.redacted} ({self.project})"

    @classmethod
    def issue(cls, project: Project, name: str = "") -> tuple[ApiKey, str]:
        raw = "sk-" + secrets.token_urlsafe(36)
        key = cls.objects.create(
            id=new_id("api_key"),
            project=project,
            name=name,
            key_hash=hash_api_key(raw),
            redacted=raw[:6] + "***" + raw[-4:],
        )
        return key, raw


class ProjectQuerySet(models.QuerySet):
    """Rows owned by a project. Services read a caller's objects only through `restrict`, so
    the project filter has one spelling and an endpoint cannot leave it out (netbox's idea)."""

    def restrict(self, project: Project) -> ProjectQuerySet:
        return self.filter(project=project)

    def owned(self, project: Project, pk: str, *, for_update: bool = False):
        """The caller's object `pk`, or None when it does not exist in their project. Made on
        nearly every request, so it takes the precompiled lookup; it is called on the manager,
        whose queryset has nothing a plain lookup would leave out."""
        if self.query.has_filters() or self.query.select_related or self.query.deferred_loading[0]:
            raise TypeError("owned() looks an object up by itself: call it on the model's manager")
        return first_row(self.model, {"project_id": project.pk, "pk": pk}, for_update=for_update)


class ProjectScoped(models.Model):
    """Fields every stored API object shares: public id, owner, creation time, metadata."""

    id = models.CharField(primary_key=True, max_length=64, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    created_ns = models.BigIntegerField(default=monotonic_ns, editable=False)
    metadata = models.JSONField(default=dict, blank=True)

    objects = ProjectQuerySet.as_manager()

    id_kind: str = ""

    class Meta:
        abstract = True
        indexes = []

    @property
    def created_at(self) -> int:
        return self.created_ns // 1_000_000_000

    def save(self, *args, **kwargs):
        if not self.id:
            self.id = new_id(self.id_kind)
            # A fresh id names no row: without this Django tries an UPDATE before the INSERT.
            kwargs.setdefault("force_insert", True)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        remember_deleted(type(self), self.project_id, self.pk, self.created_ns)
        return super().delete(*args, **kwargs)


TOMBSTONE_SECONDS = 24 * 3600


class ListTombstone(models.Model):
    """Where a deleted object stood in its list, so a client paging with its id as the cursor
    (`for a in client.beta.assistants.list(): a.delete()`) carries on instead of failing."""

    project_id = models.CharField(max_length=40)  # a tombstone is only ever seen by its project
    model = models.CharField(max_length=64)
    cursor = models.CharField(max_length=64)
    created_ns = models.BigIntegerField()
    deleted_at = models.IntegerField(default=unix_now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["project_id", "model", "cursor"])]


def remember_deleted(model: type[models.Model], project_id: str, cursor: str, created_ns: int) -> None:
    ListTombstone.objects.filter(deleted_at__lt=unix_now() - TOMBSTONE_SECONDS).delete()
    ListTombstone.objects.create(project_id=project_id, model=model._meta.label_lower, cursor=cursor,
                                 created_ns=created_ns)


def deleted_position(model: type[models.Model], project_id: str, cursor: str) -> int | None:
    return (ListTombstone.objects.filter(project_id=project_id, model=model._meta.label_lower,
                                         cursor=cursor)
            .order_by("-deleted_at", "-id").values_list("created_ns", flat=True).first())
