"""Images in messages: image_file must be an image of the project within the size limit,
image_url may not point inside the network, and runs send each image's data without
re-reading it for every model call and never another project's."""

from __future__ import annotations

import io
import json
import os

import openai
import pytest

from tests.conftest import make_client, new_project_key
from tests.fake_upstream import Reply

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _image_message(client, thread_id, file_id):
    return client.beta.threads.messages.create(thread_id, role="user", content=[
        {"type": "image_file", "image_file": {"file_id": file_id}}])


def test_an_image_file_must_be_an_image(client):
    text = client.files.create(file=("notes.png", io.BytesIO(b"just words")), purpose="vision")
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as raised:
        _image_message(client, thread.id, text.id)
    assert raised.value.body["param"] == "content[0].image_file.file_id"
    assert "is not an image (PNG, JPEG, GIF or WEBP)" in raised.value.body["message"]
    image = client.files.create(file=("ok.png", io.BytesIO(PNG)), purpose="vision")
    assert _image_message(client, thread.id, image.id).content[0].image_file.file_id == image.id


def test_an_image_file_past_the_size_limit_is_refused(client):
    big = client.files.create(file=("big.png", io.BytesIO(PNG + b"\0" * (20 * 1024 * 1024))),
                              purpose="vision")
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as raised:
        _image_message(client, thread.id, big.id)
    assert "images may be at most 20971520 bytes" in raised.value.body["message"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/admin.png", "http://localhost/x.png", "http://[::1]/x.png",
    "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/x.png", "http://192.168.0.1/x.png",
    "http://[fe80::1]/x.png", "http://[::ffff:127.0.0.1]/x.png",
])
def test_an_image_url_inside_the_network_is_refused(client, url):
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.messages.create(thread.id, role="user", content=[
            {"type": "image_url", "image_url": {"url": url}}])
    assert raised.value.status_code == 400
    assert raised.value.body["param"] == "content[0].image_url.url"
    assert "loopback, link-local or private address" in raised.value.body["message"]
    assert "IMAGE_URL_ALLOW_PRIVATE" in raised.value.body["message"]


def test_a_public_image_url_is_kept(client):
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content=[
        {"type": "image_url", "image_url": {"url": "https://93.184.215.14/cat.png"}}])
    assert message.content[0].image_url.url == "https://93.184.215.14/cat.png"


def test_a_private_deployment_may_allow_internal_image_urls(settings):
    from apps.threads.images import check_image_url

    settings.IMAGE_URL_ALLOW_PRIVATE = True
    check_image_url("http://10.0.0.5/chart.png", "content[0].image_url.url")


def _image_urls(request) -> list[str]:
    return [part["image_url"]["url"] for message in request["messages"]
            if isinstance(message.get("content"), list)
            for part in message["content"] if part.get("type") == "image_url"]


def test_a_run_never_sends_another_projects_image(client, api_base, stack, upstream, orm):
    from apps.threads.models import Message

    other = make_client(api_base, new_project_key(stack))
    theirs = other.files.create(file=("theirs.png", io.BytesIO(PNG + b"THEIRS")), purpose="vision")
    mine = client.files.create(file=("mine.png", io.BytesIO(PNG)), purpose="vision")
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    message = _image_message(client, thread.id, mine.id)
    # A row naming a foreign file (written before the check existed, or by a bug elsewhere).
    Message.objects.filter(pk=message.id).update(content=[
        {"type": "image_file", "image_file": {"file_id": theirs.id, "detail": "auto"}}])
    upstream.set_responder(lambda request: Reply(text="seen"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert _image_urls(upstream.chat_requests()[-1]) == []


def test_an_image_is_read_once_not_on_every_model_call(client, upstream, orm):
    """Between the run's two model calls the stored bytes vanish: the second call still carries
    the image, so it was not read from storage again."""
    from apps.files.models import File

    image = client.files.create(file=("once.png", io.BytesIO(PNG + b"ONCE")), purpose="vision")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {}}}}])
    thread = client.beta.threads.create()
    _image_message(client, thread.id, image.id)

    def respond(request):
        if not [m for m in request["messages"] if m["role"] == "tool"]:
            return Reply(tool_calls=[("lookup", json.dumps({}))])
        return Reply(text="done")

    upstream.set_responder(respond)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                    poll_interval_ms=100)
    assert run.status == "requires_action"
    os.remove(File.objects.get(pk=image.id).content.path)
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call_id, "output": "{}"}],
        poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    first, second = upstream.chat_requests()[-2:]
    assert _image_urls(first) == _image_urls(second) and len(_image_urls(second)) == 1
    assert _image_urls(second)[0].startswith("data:image/png;base64,")
