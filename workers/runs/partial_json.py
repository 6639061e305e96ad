"""Reads a string field out of a JSON object that is still arriving, so Code Interpreter input
can be streamed as the model writes it. The reader keeps its place: each fragment costs time in
proportion to its own length, so a long argument string streams in linear time. Kept over
jiter (which the openai SDK installs): `jiter.from_json(prefix, partial_mode="trailing-strings")`
re-parses the whole growing string on every delta, which is quadratic."""

from __future__ import annotations

import json
import re

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_AFTER_KEY = re.compile(r'\s*:\s*"')
_AFTER_KEY_SO_FAR = re.compile(r"\s*(:\s*)?")
_PLAIN = re.compile(r'[^"\\]+')
_ESCAPED_UNIT = re.compile(r"\\u[0-9a-fA-F]{4}")


class StreamedStringField:
    """`document[key]` decoded as the document arrives, one fragment at a time. Only text not
    yet understood is kept (a few characters: part of an escape, or of the key)."""

    def __init__(self, key: str) -> None:
        self._quoted_key = json.dumps(key)
        self._pending = ""
        self._in_value = False
        self._parts: list[str] = []
        self.done = False

    @property
    def value(self) -> str:
        """The decoded prefix so far ("" until the value starts)."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def feed(self, fragment: str) -> str:
        """Adds a fragment; returns the characters of the value it completed."""
        if self.done:
            return ""
        text = self._pending + fragment
        start = 0
        if not self._in_value:
            start = self._find_value(text)
            if start is None:
                return ""
        decoded, consumed = self._decode(text, start)
        self._pending = text[consumed:]
        if decoded:
            self._parts.append(decoded)
        return decoded

    def _find_value(self, text: str) -> int | None:
        """Where the value starts in `text`; None (keeping what may still begin the key) when
        it has not started yet."""
        seek = 0
        while True:
            at = text.find(self._quoted_key, seek)
            if at == -1:
                # Only the last few characters can still begin the key.
                self._pending = text[max(seek, len(text) - len(self._quoted_key) + 1):]
                return None
            after = at + len(self._quoted_key)
            match = _AFTER_KEY.match(text, after)
            if match is not None:
                self._in_value = True
                return match.end()
            if _AFTER_KEY_SO_FAR.fullmatch(text, after):
                self._pending = text[at:]  # `"key" :` so far: the rest may come next
                return None
            seek = at + 1

    def _decode(self, text: str, index: int) -> tuple[str, int]:
        out = []
        while index < len(text):
            plain = _PLAIN.match(text, index)
            if plain is not None:
                out.append(plain.group(0))
                index = plain.end()
                continue
            if text[index] == '"':
                self.done = True
                break
            if index + 1 >= len(text):
                break
            code = text[index + 1]
            if code != "u":
                out.append(_ESCAPES.get(code, code))
                index += 2
                continue
            digits = text[index + 2:index + 6]
            if len(digits) < 4:
                break
            try:
                unit = int(digits, 16)
            except ValueError:  # not JSON after all: show it as written
                out.append(text[index:index + 6])
                index += 6
                continue
            if 0xD800 <= unit <= 0xDBFF:  # a surrogate pair arrives as two escapes
                low = text[index + 6:index + 12]
                if len(low) < 6:
                    break  # wait for the second half rather than emit half a character
                second = int(low[2:], 16) if _ESCAPED_UNIT.fullmatch(low) else -1
                if 0xDC00 <= second <= 0xDFFF:
                    out.append(chr(0x10000 + ((unit - 0xD800) << 10) + (second - 0xDC00)))
                    index += 12
                    continue
            out.append(chr(unit))
            index += 6
        return "".join(out), index


def partial_string_field(document: str, key: str) -> str:
    """The decoded prefix of `document[key]` available so far ("" until it starts)."""
    reader = StreamedStringField(key)
    reader.feed(document)
    return reader.value


def string_field(document: str, key: str) -> str:
    try:
        value = json.loads(document).get(key, "")
    except (ValueError, AttributeError):
        return partial_string_field(document, key)
    return value if isinstance(value, str) else ""
