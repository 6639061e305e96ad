"""Each model call of a run keeps what the model was sent (the messages truncation kept, with
their token counts, the tools offered, the model and its settings) and when it answered."""

from __future__ import annotations

from tests.fake_upstream import Reply

LOOKUP = {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}


def test_it_records_what_each_model_call_was_sent(client, upstream, orm):
    from apps.runs.models import ModelCall
    from apps.threads.models import Message

    upstream.enqueue(Reply(tool_calls=[("lookup", '{"q": "tides"}')]), Reply(text="Done."))
    assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be exact.", temperature=0.3,
                                              tools=[{"type": "function", "function": LOOKUP}])
    thread = client.beta.threads.create(messages=[
        {"role": "user", "content": "first, dropped by truncation"},
        {"role": "user", "content": "second message"},
        {"role": "user", "content": "third message"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=300,
        truncation_strategy={"type": "last_messages", "last_messages": 2}, poll_interval_ms=50)
    assert run.status == "requires_action"
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call_id, "output": "high"}],
        poll_interval_ms=50)
    assert run.status == "completed"

    calls = list(ModelCall.objects.filter(run_id=run.id).order_by("started_ns"))
    assert len(calls) == 2
    first, second = calls
    assert first.model == "gpt-4o" and first.settings["temperature"] == 0.3
    assert first.settings["max_completion_tokens"] == 300
    assert [t["function"]["name"] for t in first.tools] == ["lookup"]
    assert first.truncation["strategy"] == {"type": "last_messages", "last_messages": 2}
    assert first.truncation["kept_thread_messages"] == 2 and first.truncation["thread_messages"] == 3
    kept = {m.id: m for m in Message.objects.filter(thread_id=thread.id, role="user")}
    sources = [entry["source"] for entry in first.messages]
    assert sources[0] == "instructions" and first.messages[0]["content"] == "Be exact."
    second_id = next(m.id for m in kept.values() if m.text() == "second message")
    third_id = next(m.id for m in kept.values() if m.text() == "third message")
    assert sources[1:] == [second_id, third_id]
    assert first.messages[1]["tokens"] == kept[second_id].token_count + 3
    assert first.finish_reason == "tool_calls" and first.prompt_tokens and first.completion_tokens
    assert first.started_ns <= first.first_token_ns <= first.finished_ns

    # The second call also carried the run's own tool exchange.
    assert [e["source"] for e in second.messages][-2:] == ["run", "run"]
    assert second.messages[-1] == {"role": "tool", "content": "high", "tool_call_id": call_id,
                                   "source": "run", "tokens": second.messages[-1]["tokens"]}
    assert second.finish_reason == "stop"
    # What the upstream received is what was recorded.
    sent = upstream.chat_requests()[0]
    assert [m["content"] for m in sent["messages"]] == [e["content"] for e in first.messages]
