"""The Django admin pages a person uses to inspect conversations and runs render with real data."""

from __future__ import annotations

import uuid

import pytest

from tests.fake_upstream import Reply


@pytest.fixture
def admin_browser(orm):
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:8]}", "a@example.com", "pw")
    browser = Client()
    browser.force_login(user)
    return browser


def test_the_admin_shows_threads_messages_runs_and_steps(admin_browser, client, fake_upstream):
    fake_upstream.reset()
    fake_upstream.enqueue(Reply(tool_calls=[("lookup", '{"q": "x"}')]))
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Find the admin text"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=50)
    assert run.status == "requires_action"

    page = admin_browser.get(f"/admin/runs/run/{run.id}/change/")
    assert page.status_code == 200
    html = page.content.decode().lower()
    assert "status timeline" in html and "lookup" in html and run.id.lower() in html

    page = admin_browser.get(f"/admin/threads/thread/{thread.id}/change/")
    assert page.status_code == 200 and "Find the admin text" in page.content.decode()
    for listing in ("runs/run", "threads/message", "assistants/assistant", "files/file",
                    "core/project", "core/apikey", "vector_stores/vectorstore"):
        assert admin_browser.get(f"/admin/{listing}/").status_code == 200, listing
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_the_admin_styles_are_served_without_debug(api_base):
    import httpx2

    root = api_base.rsplit("/v1", 1)[0]
    response = httpx2.get(f"{root}/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
