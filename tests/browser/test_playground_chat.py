"""Chatting in the Playground: streaming, Markdown, function outputs, cancel, citations, Code
Interpreter images and files, the run inspector; a real Chromium against the real stack."""

from __future__ import annotations

import io
import json

import pytest

from tests.browser.conftest import shoot
from tests.fake_upstream import Reply

WEATHER = {"name": "get_weather", "description": "Weather for a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CHART_CODE = (
    "import pandas as pd\nimport matplotlib.pyplot as plt\n"
    "df = pd.DataFrame({'month': ['jan', 'feb', 'mar'], 'amount': [10, 30, 20]})\n"
    "df.plot(x='month', y='amount', kind='bar')\n"
    "df.sort_values('amount').to_csv('/mnt/data/sorted.csv', index=False)\n"
    "print(df.amount.sum())"
)


def use(playground, assistant) -> object:
    """Reload so the builder lists `assistant`, and pick it."""
    page = playground.page
    page.reload()
    page.get_by_role("button", name="New thread", exact=True).wait_for()
    page.locator("#assistant-pick").select_option(assistant.id)
    page.wait_for_function("id => document.querySelector('#assistant-pick').value === id", arg=assistant.id)
    page.get_by_label("Name", exact=True).wait_for()
    return page


def send(page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def wait_status(page, status: str) -> None:
    page.locator("#run-status").filter(has_text=f": {status}").wait_for()


def test_a_reply_streams_in_as_markdown_with_the_runs_overrides(playground, sdk, upstream, screenshots):
    assistant = sdk.beta.assistants.create(model="gpt-4o", name="Streamer", instructions="Be helpful.")
    words = " ".join(f"word{n}" for n in range(30))
    upstream.enqueue(Reply(text=f"**Tides** follow the `moon`. {words} end.", per_chunk_delay=0.06))
    page = use(playground, assistant)
    page.get_by_text("Run options").click()
    page.get_by_label("Run instructions", exact=True).fill("Answer in one line.")
    page.get_by_label("Run max completion tokens", exact=True).fill("500")
    page.get_by_label("Run model", exact=True).fill("gpt-4o-mini")
    send(page, "What drives tides?")

    reply = page.locator("article.message.assistant")
    reply.filter(has_text="word3").wait_for()
    assert "end." not in reply.inner_text()  # the text is still arriving
    wait_status(page, "completed")
    assert reply.locator("strong").inner_text() == "Tides"
    assert reply.locator("code").inner_text() == "moon"
    assert "**" not in reply.inner_text()

    sent = upstream.last_chat_request()
    assert sent["model"] == "gpt-4o-mini" and sent["max_completion_tokens"] == 500
    assert sent["messages"][0] == {"role": "system", "content": "Answer in one line."}
    shoot(page, screenshots, "thread", view="thread")

    page.get_by_role("button", name="View code", exact=True).click()
    code = page.locator("#dialog-body").inner_text()
    assert "client.beta.assistants.create(" in code and '"Streamer"' in code
    assert 'model="gpt-4o-mini"' in code and "max_completion_tokens=500" in code
    assert 'instructions="Answer in one line."' in code
    page.get_by_role("button", name="Close", exact=True).click()


def test_a_function_call_is_answered_and_the_stream_continues(playground, sdk, upstream):
    assistant = sdk.beta.assistants.create(model="gpt-4o", name="Forecaster",
                                           tools=[{"type": "function", "function": WEATHER}])
    upstream.enqueue(Reply(tool_calls=[("get_weather", '{"city": "Paris"}')]),
                     Reply(text="It is sunny in Paris."))
    page = use(playground, assistant)
    send(page, "Weather in Paris?")
    output = page.get_by_label("Output for get_weather", exact=True)
    output.wait_for()
    assert '"city": "Paris"' in page.get_by_label("Arguments of get_weather").inner_text()
    wait_status(page, "requires_action")
    output.fill('{"sky": "sunny"}')
    page.get_by_role("button", name="Submit outputs", exact=True).click()
    page.locator("article.message.assistant").filter(has_text="It is sunny in Paris.").wait_for()
    wait_status(page, "completed")
    tool_message = [m for m in upstream.last_chat_request()["messages"] if m["role"] == "tool"]
    assert tool_message[0]["content"] == '{"sky": "sunny"}'


def test_a_slow_run_is_cancelled(playground, sdk, upstream):
    assistant = sdk.beta.assistants.create(model="gpt-4o", name="Slowpoke")
    upstream.enqueue(Reply(text=" ".join(["slow"] * 200), per_chunk_delay=0.25))
    page = use(playground, assistant)
    send(page, "Take your time")
    page.locator("article.message.assistant").filter(has_text="slow").wait_for()
    cancel = page.get_by_role("button", name="Cancel run", exact=True)
    assert cancel.is_enabled()
    cancel.click()
    wait_status(page, "cancelled")
    assert not cancel.is_enabled()
    thread_id = page.locator("#thread-current").inner_text()
    assert sdk.beta.threads.runs.list(thread_id=thread_id).data[0].status == "cancelled"


def test_a_citation_is_a_footnote_that_opens_the_cited_chunk(playground, sdk, upstream, screenshots):
    tides = sdk.files.create(file=("tides.txt", io.BytesIO(
        b"Ocean tides are caused mainly by the gravitational pull of the moon.")), purpose="assistants")
    store = sdk.vector_stores.create(name="ocean", file_ids=[tides.id])
    while sdk.vector_stores.retrieve(store.id).file_counts.in_progress:
        pass
    assistant = sdk.beta.assistants.create(model="gpt-4o", name="Librarian", tools=[{"type": "file_search"}],
                                           tool_resources={"file_search": {"vector_store_ids": [store.id]}})

    def respond(request):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            return Reply(tool_calls=[("file_search", '{"queries": ["what causes tides"]}')])
        marker = results[-1]["content"].split("\n", 1)[0]
        return Reply(text=f"Tides come from the moon's pull{marker}.")

    upstream.set_responder(respond)
    page = use(playground, assistant)
    send(page, "What causes tides?")
    wait_status(page, "completed")
    reply = page.locator("article.message.assistant")
    footnote = reply.locator("ol.footnotes a.footnote")
    footnote.filter(has_text="tides.txt").wait_for()
    assert "【" not in reply.inner_text() and "†" not in reply.inner_text()
    assert reply.get_by_role("link", name="Citation 1").is_visible()
    footnote.click()
    dialog = page.get_by_role("dialog")
    dialog.filter(has_text="gravitational pull of the moon").wait_for()
    assert "Source: tides.txt" in dialog.inner_text()
    page.get_by_role("button", name="Close", exact=True).click()

    # The inspector shows the file_search step with its results and scores.
    inspector = page.locator("#run-detail")
    inspector.locator(".step").filter(has_text="File Search · 1 result(s)").wait_for()
    result = inspector.locator("ol.results li").first
    assert "tides.txt" in result.inner_text() and "score" in result.inner_text()
    shoot(page, screenshots, "inspector", view="inspector")


@pytest.mark.docker
def test_code_interpreter_code_logs_image_and_file_appear(playground, sdk, upstream, screenshots):
    assistant = sdk.beta.assistants.create(model="gpt-4o", name="Analyst", tools=[{"type": "code_interpreter"}])

    def respond(request):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            return Reply(tool_calls=[("python", json.dumps({"code": CHART_CODE}))], per_chunk_delay=0.01)
        return Reply(text=f"Total {results[-1]['content'].strip()}. "
                          "Download [sorted.csv](sandbox:/mnt/data/sorted.csv).")

    upstream.set_responder(respond)
    page = use(playground, assistant)
    send(page, "Chart my sales")
    code = page.locator(".tool-call pre.code")
    code.filter(has_text="import pandas").wait_for()
    assert "completed" not in page.locator("#run-status").inner_text()  # shown while it runs
    # A fresh sandbox may still be importing matplotlib: its first execution can take seconds.
    page.locator(".tool-call pre.logs").filter(has_text="60").wait_for(timeout=60_000)
    wait_status(page, "completed")
    assert "df.plot(x='month'" in code.inner_text()

    image = page.locator("article.message.assistant img.inline-image")
    image.wait_for()
    page.wait_for_function("() => document.querySelector('img.inline-image').naturalWidth > 100")
    assert image.get_attribute("src").startswith("blob:")
    link = page.get_by_role("link", name="Download sorted.csv", exact=True)
    with page.expect_download() as download:
        link.click()
    saved = download.value
    assert saved.suggested_filename == "sorted.csv"
    with open(saved.path(), "rb") as handle:
        assert handle.read() == b"month,amount\njan,10\nmar,20\nfeb,30\n"

    # The run inspector: steps in order, with the code, its logs and the raw JSON.
    inspector = page.locator("#run-detail")
    inspector.locator(".step").filter(has_text="message_creation · completed").wait_for()
    steps = inspector.locator("ol.steps > li.step")
    assert steps.count() == 2
    first, second = steps.nth(0).inner_text(), steps.nth(1).inner_text()
    assert first.startswith("TOOL_CALLS") or "tool_calls" in first
    assert "print(df.amount.sum())" in first and "60" in first and "image" in first
    assert "message_creation" in second.lower()
    inspector.locator("details.raw summary").first.click()
    assert '"object": "thread.run"' in inspector.locator("details.raw pre").first.inner_text()
    shoot(page, screenshots, "code-interpreter", view="thread")
