"""Semantic Kernel: OpenAIAssistantAgent, invoked and streamed (invoke_stream)."""

from __future__ import annotations

from typing import Annotated

from common import run_scenarios, settings
from semantic_kernel.agents import AssistantAgentThread, OpenAIAssistantAgent
from semantic_kernel.contents import StreamingAnnotationContent
from semantic_kernel.functions import kernel_function

config = settings()


class WeatherPlugin:
    @kernel_function(description="The current weather in a city.")
    def get_weather(self, city: Annotated[str, "The city"]) -> str:
        return f"Sunny and 21 degrees in {city}"


def _client():
    return OpenAIAssistantAgent.create_client(api_key=config["api_key"], ai_model_id="gpt-4o",
                                              base_url=config["base_url"])


async def _agent(client, name: str, plugins=None, tools=None, tool_resources=None) -> OpenAIAssistantAgent:
    definition = await client.beta.assistants.create(
        model="gpt-4o", name=name, instructions="You are a helpful assistant.",
        tools=tools or [], tool_resources=tool_resources or {})
    return OpenAIAssistantAgent(client=client, definition=definition, plugins=plugins or [])


async def _invoke(agent: OpenAIAssistantAgent, question: str) -> dict:
    thread: AssistantAgentThread | None = None
    texts = []
    async for response in agent.invoke(messages=question, thread=thread):
        # Code Interpreter input comes first, as a message of its own; the answer is last.
        texts.append(str(response.content))
        thread = response.thread
    return {"text": texts[-1], "messages": texts, "thread_id": thread.id}


async def echo() -> dict:
    return await _invoke(await _agent(_client(), "echo"), "hello from semantic kernel")


async def function_call() -> dict:
    agent = await _agent(_client(), "weather", plugins=[WeatherPlugin()])
    return await _invoke(agent, "What is the weather in Paris?")


async def file_search() -> dict:
    client = _client()
    with open(config["files"]["kb"], "rb") as handle:
        uploaded = await client.files.create(file=handle, purpose="assistants")
    store = await client.vector_stores.create(name="kb")
    await client.vector_stores.file_batches.create_and_poll(vector_store_id=store.id, file_ids=[uploaded.id])
    tools, resources = OpenAIAssistantAgent.configure_file_search_tool(vector_store_ids=store.id)
    agent = await _agent(client, "librarian", tools=tools, tool_resources=resources)
    thread = None
    text, annotations = [], []
    async for response in agent.invoke_stream(messages="What drives the tide?", thread=thread):
        thread = response.thread
        for item in response.items:
            if isinstance(item, StreamingAnnotationContent):
                annotations.append({"quote": item.quote, "file_id": item.file_id,
                                    "start_index": item.start_index, "end_index": item.end_index})
        text.append(str(response.content))
    return {"text": "".join(text), "annotations": annotations, "file_id": uploaded.id,
            "thread_id": thread.id}


async def code_interpreter() -> dict:
    client = _client()
    with open(config["files"]["sales"], "rb") as handle:
        uploaded = await client.files.create(file=handle, purpose="assistants")
    tools, resources = OpenAIAssistantAgent.configure_code_interpreter_tool(file_ids=[uploaded.id])
    agent = await _agent(client, "analyst", tools=tools, tool_resources=resources)
    return {**await _invoke(agent, "Sum the amounts in sales.csv"), "file_id": uploaded.id}


run_scenarios({"echo": echo, "function_call": function_call, "file_search": file_search,
               "code_interpreter": code_interpreter})
