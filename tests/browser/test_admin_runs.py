"""The Django admin, looked at as an operator would in a real Chromium: a run's durations, the
thread's transcript beside it and what the model was sent; runs read-only, with cancel and
expire actions that go through the runs services; a staff member opens the Playground."""

from __future__ import annotations

import uuid

import pytest

from tests.fake_upstream import Reply

LOOKUP = {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}


@pytest.fixture
def staff(orm):
    from django.contrib.auth.models import User

    name = f"operator-{uuid.uuid4().hex[:8]}"
    User.objects.create_superuser(name, f"{name}@example.com", "pw-operator")
    return name, "pw-operator"


@pytest.fixture
def admin_page(browser_page, origin, staff):
    page = browser_page.page
    page.goto(f"{origin}/admin/login/")
    page.get_by_label("Username:").fill(staff[0])
    page.get_by_label("Password:").fill(staff[1])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Log out").or_(page.get_by_role("button", name="Log out")).wait_for()
    return page


def _waiting_run(sdk, upstream, text: str):
    upstream.enqueue(Reply(tool_calls=[("lookup", '{"q": "x"}')]))
    assistant = sdk.beta.assistants.create(model="gpt-4o", tools=[{"type": "function", "function": LOOKUP}])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                poll_interval_ms=50)
    assert run.status == "requires_action"
    return thread, run


def test_a_run_page_shows_durations_transcript_and_what_the_model_was_sent(
        admin_page, origin, sdk, upstream, screenshots, orm):
    upstream.enqueue(Reply(text="The tide turns at six.", first_token_delay=0.2))
    assistant = sdk.beta.assistants.create(model="gpt-4o", instructions="Answer from the tide table.")
    thread = sdk.beta.threads.create(messages=[
        {"role": "user", "content": "An old question that truncation drops"},
        {"role": "user", "content": "When does the tide turn?"}])
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50,
        truncation_strategy={"type": "last_messages", "last_messages": 1})
    assert run.status == "completed"

    page = admin_page
    page.goto(f"{origin}/admin/runs/run/{run.id}/change/")
    durations = page.locator(".field-durations")
    text = durations.inner_text()
    assert "queue wait" in text and "time to first token" in text and "total" in text
    first_token_ms = int(text.split("time to first token:")[1].split("ms")[0].strip())
    assert 200 <= first_token_ms < 10_000  # the upstream waited 0.2 s before its first token

    transcript = page.get_by_role("complementary", name="Thread transcript")
    assert "An old question that truncation drops" in transcript.inner_text()
    assert "The tide turns at six." in transcript.inner_text()
    box = transcript.bounding_box()
    main = page.locator(".run-main").bounding_box()
    assert box["x"] > main["x"] + main["width"] - 1  # beside the run, not below it

    sent = page.locator(".field-model_calls")
    sent_text = sent.inner_text()
    assert "Model call 1 · gpt-4o" in sent_text
    assert "kept 1 of 2 thread messages" in sent_text
    assert "Answer from the tide table." in sent_text and "When does the tide turn?" in sent_text
    assert "An old question that truncation drops" not in sent_text
    rows = sent.locator("table.sent-messages tbody tr")
    assert rows.count() == 2
    assert int(rows.nth(1).locator("td").nth(3).inner_text()) > 3  # its token count
    assert page.locator(".field-duration").first.inner_text().strip().endswith(("ms", "s"))
    page.screenshot(path=str(screenshots / "admin-run-1280x800.png"), full_page=False)

    # Read-only: no field to edit, nothing to save or delete, and a forged POST is refused.
    assert page.locator("select[name=status], input[name=status]").count() == 0
    assert page.get_by_role("button", name="Save").count() == 0
    assert page.get_by_role("link", name="Delete").count() == 0
    from django.contrib.auth.models import User
    from django.test import Client

    from apps.runs.models import Run

    forger = Client()
    forger.force_login(User.objects.filter(is_superuser=True).last())
    answer = forger.post(f"/admin/runs/run/{run.id}/change/", {"status": "queued"})
    assert answer.status_code == 403
    assert Run.objects.get(pk=run.id).status == "completed"
    assert forger.get("/admin/runs/run/add/").status_code == 403


def test_the_run_list_shows_status_and_model_and_filters_and_searches(
        admin_page, origin, sdk, upstream, orm):
    from apps.core.models import Project

    Project.objects.get_or_create(name="a second project")  # a filter shows with two choices
    thread, run = _waiting_run(sdk, upstream, "List me")
    page = admin_page
    page.goto(f"{origin}/admin/runs/run/?q={run.id}")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    for column in ("status", "model"):
        cell = row.locator(f"td.field-{column}").bounding_box()
        assert cell["x"] + cell["width"] <= 1280, column  # on screen at 1280 px
    assert row.locator("td.field-status").inner_text() == "requires_action"
    assert page.get_by_role("link", name="Add run").count() == 0
    step_id = sdk.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0].id
    message_id = sdk.beta.threads.messages.list(thread.id).data[0].id
    for term in (thread.id, step_id, message_id, run.required_action.submit_tool_outputs.tool_calls[0].id):
        page.goto(f"{origin}/admin/runs/run/?q={term}")
        assert page.locator("#result_list tbody tr").count() == 1, term
    filters = page.locator("#changelist-filter").inner_text().lower()
    for title in ("project", "status", "model", "created"):
        assert f"by {title}" in filters, title
    page.goto(f"{origin}/admin/")
    assert page.get_by_role("link", name="File batches").count() == 1
    assert "File batchs" not in page.content()
    sdk.beta.threads.runs.cancel(run.id, thread_id=thread.id)


@pytest.mark.parametrize(("action", "status"), [("Cancel selected runs", "cancelled"),
                                                 ("Expire selected runs", "expired")])
def test_the_run_actions_go_through_the_services(admin_page, origin, sdk, upstream, action, status):
    thread, run = _waiting_run(sdk, upstream, f"Stop me: {action}")
    page = admin_page
    page.goto(f"{origin}/admin/runs/run/?q={run.id}")
    page.locator("#result_list tbody input.action-select").check()
    page.locator("select[name=action]").select_option(label=action)
    page.get_by_role("button", name="Run the selected action").or_(page.get_by_role("button", name="Go")).click()
    page.locator(".messagelist").wait_for()
    for _ in range(100):
        current = sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
        if current.status == status:
            break
        page.wait_for_timeout(100)
    assert current.status == status
    page.goto(f"{origin}/admin/runs/run/?q={run.id}&status={status}")
    assert page.locator("#result_list tbody tr").count() == 1  # the status filter finds it


def test_a_staff_session_opens_the_playground_for_a_chosen_project(admin_page, origin, sdk, staff, orm):
    from apps.assistants.models import Assistant
    from apps.core.models import ApiKey

    marker = sdk.beta.assistants.create(model="gpt-4o", name=f"staff-{uuid.uuid4().hex[:6]}")
    project_id = Assistant.objects.get(pk=marker.id).project_id
    page = admin_page
    for _ in range(2):  # opening it again replaces the key it was given
        page.goto(f"{origin}/playground/staff/")
        page.get_by_label("Project").select_option(project_id)
        page.get_by_role("button", name="Open Playground").click()
        page.wait_for_url(f"{origin}/playground/")
        page.get_by_role("button", name="New thread", exact=True).wait_for()
    page.locator("#assistant-pick option", has_text=marker.name).wait_for(state="attached")
    key = page.evaluate("localStorage.getItem('playground.apiKey')")
    assert key and key.startswith("sk-") and key not in page.url
    live = ApiKey.objects.filter(project_id=project_id, name=f"playground ({staff[0]})", revoked=False)
    assert live.count() == 1


def test_the_playground_hand_off_needs_a_staff_session(origin):
    import httpx2

    response = httpx2.get(f"{origin}/playground/staff/", timeout=10)
    assert response.status_code == 302 and response.headers["location"].startswith("/admin/login/")


def test_the_hand_off_names_an_unknown_project(staff, orm):
    from django.contrib.auth.models import User
    from django.test import Client

    browser = Client()
    browser.force_login(User.objects.get(username=staff[0]))
    answer = browser.post("/playground/staff/", {"project": "proj_missing"})
    assert answer.status_code == 400
    assert "No project found with id &#x27;proj_missing&#x27;." in answer.content.decode()
    assert "playground-key" not in answer.content.decode()
