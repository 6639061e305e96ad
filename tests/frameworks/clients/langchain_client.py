"""LangChain (langchain-classic): OpenAIAssistantRunnable, as its documentation uses it."""

from __future__ import annotations

import openai
from common import run_scenarios, settings
from langchain_classic.agents import AgentExecutor
from langchain_classic.agents.openai_assistant import OpenAIAssistantRunnable
from langchain_core.tools import tool

config = settings()
client = openai.OpenAI(base_url=config["base_url"], api_key=config["api_key"])


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 degrees in {city}"


def _assistant(name: str, tools: list, **kwargs) -> OpenAIAssistantRunnable:
    return OpenAIAssistantRunnable.create_assistant(
        name=name, instructions="You are a helpful assistant.", tools=tools, model="gpt-4o",
        client=client, check_every_ms=100, **kwargs)


def _text(messages) -> dict:
    text = messages[-1].content[0].text
    return {"text": text.value, "annotations": [a.model_dump() for a in text.annotations],
            "thread_id": messages[-1].thread_id, "run_id": messages[-1].run_id}


def echo() -> dict:
    return _text(_assistant("echo", []).invoke({"content": "hello from langchain"}))


def function_call() -> dict:
    agent = _assistant("weather", [get_weather], as_agent=True)
    executor = AgentExecutor(agent=agent, tools=[get_weather])
    result = executor.invoke({"content": "What is the weather in Paris?"})
    return {"text": result["output"], "thread_id": result["thread_id"], "run_id": result["run_id"]}


def file_search() -> dict:
    with open(config["files"]["kb"], "rb") as handle:
        uploaded = client.files.create(file=handle, purpose="assistants")
    agent = _assistant("librarian", [{"type": "file_search"}])
    messages = agent.invoke({"content": "What drives the tide?", "attachments": [
        {"file_id": uploaded.id, "tools": [{"type": "file_search"}]}]})
    return {**_text(messages), "file_id": uploaded.id}


def code_interpreter() -> dict:
    with open(config["files"]["sales"], "rb") as handle:
        uploaded = client.files.create(file=handle, purpose="assistants")
    agent = _assistant("analyst", [{"type": "code_interpreter"}])
    messages = agent.invoke({"content": "Sum the amounts in sales.csv", "attachments": [
        {"file_id": uploaded.id, "tools": [{"type": "code_interpreter"}]}]})
    return {**_text(messages), "file_id": uploaded.id}


run_scenarios({"echo": echo, "function_call": function_call, "file_search": file_search,
               "code_interpreter": code_interpreter})
