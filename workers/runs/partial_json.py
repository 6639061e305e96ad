"""Reads a string field out of a JSON object that is still arriving, so Code Interpreter input
can be streamed as the model writes it."""

from __future__ import annotations

import json
import re

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def partial_string_field(document: str, key: str) -> str:
    """The decoded prefix of `document[key]` available so far ("" until it starts)."""
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*"', document)
    if match is None:
        return ""
    out: list[str] = []
    index = match.end()
    while index < len(document):
        char = document[index]
        if char == '"':
            break
        if char != "\\":
            out.append(char)
            index += 1
            continue
        if index + 1 >= len(document):
            break
        code = document[index + 1]
        if code == "u":
            digits = document[index + 2:index + 6]
            if len(digits) < 4:
                break
            out.append(chr(int(digits, 16)))
            index += 6
        else:
            out.append(_ESCAPES.get(code, code))
            index += 2
    return "".join(out)


def string_field(document: str, key: str) -> str:
    try:
        value = json.loads(document).get(key, "")
    except (ValueError, AttributeError):
        return partial_string_field(document, key)
    return value if isinstance(value, str) else ""
