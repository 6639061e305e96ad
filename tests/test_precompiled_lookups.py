"""apps/core/sql.py's precompiled lookups give what the ORM's own query gives: every field
converted, a followed foreign key cached, deferred columns, any-of values, and a row lock."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.assistants.models import Assistant
from apps.core.models import ApiKey, Project, hash_api_key
from apps.core.sql import first_row
from apps.runs.models import ACTIVE_STATUSES, Run, active_run_id
from apps.threads.models import Thread


def _fields(obj) -> dict:
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


@pytest.fixture
def project(orm):
    project = Project.objects.create(name="precompiled-lookups")
    yield project
    project.delete()


def test_an_owned_lookup_matches_the_orm_field_for_field(project):
    assistant = Assistant.objects.create(
        project=project, model="gpt-4o", name="lookups", metadata={"k": "v"},
        tools=[{"type": "code_interpreter"}], temperature=0.5,
        tool_resources={"code_interpreter": {"file_ids": ["file-1"]}})
    found = Assistant.objects.owned(project, assistant.pk)
    assert _fields(found) == _fields(Assistant.objects.get(pk=assistant.pk))
    assert found.metadata == {"k": "v"} and found.tools == [{"type": "code_interpreter"}]
    assert found._state.adding is False and found._state.db == "default"

    stranger = Project.objects.create(name="precompiled-lookups-stranger")
    try:
        assert Assistant.objects.owned(stranger, assistant.pk) is None
    finally:
        stranger.delete()
    assert Assistant.objects.owned(project, "asst_missing") is None
    with pytest.raises(TypeError):
        Assistant.objects.filter(name="lookups").owned(project, assistant.pk)


def test_an_api_key_lookup_brings_its_project_and_skips_revoked_keys(project):
    key, raw = ApiKey.issue(project, "lookup")
    found = first_row(ApiKey, {"key_hash": hash_api_key(raw), "revoked": False}, related=("project",))
    assert _fields(found) == _fields(key)
    expected = _fields(Project.objects.get(pk=project.pk))
    with CaptureQueriesContext(connection) as queries:
        assert _fields(found.project) == expected
    assert len(queries) == 0  # it came with the key
    ApiKey.objects.filter(pk=key.pk).update(revoked=True)
    assert first_row(ApiKey, {"key_hash": hash_api_key(raw), "revoked": False},
                     related=("project",)) is None


def test_a_lookup_by_any_of_several_values_reads_only_the_named_columns(project):
    thread = Thread.objects.create(project=project)
    assert active_run_id(thread.pk) is None
    run = Run.objects.create(project=project, thread=thread, assistant_id="asst_x", model="gpt-4o",
                             status="requires_action", expires_at=0)
    assert "requires_action" in ACTIVE_STATUSES
    assert active_run_id(thread.pk) == run.pk
    deferred = first_row(Run, {"pk": run.pk}, names=("id", "status"))
    assert deferred.get_deferred_fields() >= {"instructions", "tools"}
    assert deferred.status == "requires_action"
    Run.objects.filter(pk=run.pk).update(status="completed")
    assert active_run_id(thread.pk) is None


def test_a_lookup_for_update_holds_the_row_until_its_transaction_ends(project):
    thread = Thread.objects.create(project=project)
    locked, release, waited = threading.Event(), threading.Event(), []

    def hold() -> None:
        try:
            with transaction.atomic():
                assert Thread.objects.owned(project, thread.pk, for_update=True) is not None
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
        try:
            with transaction.atomic():
                Thread.objects.owned(project, thread.pk, for_update=True)
        except Exception as error:  # noqa: BLE001 (the lock's timeout is what is expected)
            waited.append(type(error).__name__)
    release.set()
    holder.join(10)
    assert waited == ["OperationalError"]
