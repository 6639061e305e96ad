"""AutoGen (autogen-ext): OpenAIAssistantAgent, with its own upload helpers."""

from __future__ import annotations

from autogen_agentchat.messages import TextMessage
from autogen_core import CancellationToken
from autogen_ext.agents.openai import OpenAIAssistantAgent
from common import run_scenarios, settings
from openai import AsyncOpenAI

config = settings()


async def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 degrees in {city}"


def _agent(client: AsyncOpenAI, name: str, tools: list) -> OpenAIAssistantAgent:
    return OpenAIAssistantAgent(name=name, description=f"The {name}", client=client, model="gpt-4o",
                                instructions="You are a helpful assistant.", tools=tools)


async def _ask(agent: OpenAIAssistantAgent, client: AsyncOpenAI, question: str) -> dict:
    token = CancellationToken()
    response = await agent.on_messages([TextMessage(source="user", content=question)], token)
    thread_id = (await agent.save_state())["thread_id"]
    latest = (await client.beta.threads.messages.list(thread_id=thread_id, order="desc", limit=1)).data[0]
    text = latest.content[0].text
    return {"text": response.chat_message.content, "thread_id": thread_id, "run_id": latest.run_id,
            "annotations": [a.model_dump() for a in text.annotations],
            "inner": [type(m).__name__ for m in response.inner_messages or []]}


def _client() -> AsyncOpenAI:
    return AsyncOpenAI(base_url=config["base_url"], api_key=config["api_key"])


async def echo() -> dict:
    client = _client()
    return await _ask(_agent(client, "echo", []), client, "hello from autogen")


async def function_call() -> dict:
    client = _client()
    return await _ask(_agent(client, "weather", [get_weather]), client, "What is the weather in Paris?")


async def file_search() -> dict:
    client = _client()
    agent = _agent(client, "librarian", ["file_search"])
    await agent.on_upload_for_file_search(config["files"]["kb"], CancellationToken())
    return await _ask(agent, client, "What drives the tide?")


async def code_interpreter() -> dict:
    client = _client()
    agent = _agent(client, "analyst", ["code_interpreter"])
    # Reads the thread and posts back ToolResources(...).model_dump(), nulls included.
    await agent.on_upload_for_code_interpreter(config["files"]["sales"], CancellationToken())
    return await _ask(agent, client, "Sum the amounts in sales.csv")


run_scenarios({"echo": echo, "function_call": function_call, "file_search": file_search,
               "code_interpreter": code_interpreter})
