"""Raw Server-Sent Events, for checks the SDK hides (the `done` event, keep-alives, order),
and the official example transcripts to compare against."""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

SPEC_EXAMPLES = Path(__file__).resolve().parents[2] / "apps" / "core" / "spec" / "examples"
SHARED_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "examples"


def parse_sse(text: str) -> list[tuple[str, object]]:
    events = []
    name, data = None, []
    for line in text.splitlines():
        if line == "":
            if name is not None or data:
                payload = "\n".join(data)
                events.append((name or "message", payload if payload == "[DONE]" else json.loads(payload)))
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].strip())
    return events


def collapse(names: list[str]) -> list[str]:
    """Runs of the same delta event count once: how many chunks the model sent is not the
    protocol."""
    return [name for name, _ in groupby(names)]


def transcript_events(example: str) -> list[str]:
    for folder in (SPEC_EXAMPLES, SHARED_EXAMPLES):
        path = folder / example
        if path.exists():
            body = path.read_text().split("## response", 1)[1]
            # Only the names: some transcript payloads are not valid JSON (a stray brace).
            return [line[len("event:"):].strip() for line in body.splitlines()
                    if line.startswith("event:")]
    raise FileNotFoundError(example)


def stream_raw(http, path: str, body: dict, headers: dict | None = None) -> tuple[int, list[tuple[str, object]]]:
    with http.stream("POST", path, json=body, headers={"OpenAI-Beta": "assistants=v2", **(headers or {})},
                     timeout=60) as response:
        text = response.read().decode()
        return response.status_code, parse_sse(text)
