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
            try:
                unit = int(digits, 16)
            except ValueError:  # not JSON after all: show it as written
                out.append(document[index:index + 6])
                index += 6
                continue
            if 0xD800 <= unit <= 0xDBFF:  # a surrogate pair arrives as two escapes
                low = document[index + 6:index + 12]
                if len(low) < 6:
                    break  # wait for the second half rather than emit half a character
                if low.startswith("\\u"):
                    try:
                        second = int(low[2:], 16)
                    except ValueError:
                        second = -1
                    if 0xDC00 <= second <= 0xDFFF:
                        out.append(chr(0x10000 + ((unit - 0xD800) << 10) + (second - 0xDC00)))
                        index += 12
                        continue
            out.append(chr(unit))
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
