"""Code Interpreter input streamed out of JSON arguments that are still arriving."""

from __future__ import annotations

import json
import time

from workers.runs.model_calls import ToolCallOut
from workers.runs.partial_json import StreamedStringField, partial_string_field


def test_every_prefix_decodes_to_a_prefix_of_the_final_code():
    code = 'print("\U0001F600 \u00e9\\n")\nx = {"a": 1}'
    document = json.dumps({"code": code})
    previous = ""
    for end in range(len(document) + 1):
        decoded = partial_string_field(document[:end], "code")
        assert code.startswith(decoded)
        assert len(decoded) >= len(previous)  # only ever grows: safe to stream the difference
        assert not any(0xD800 <= ord(char) <= 0xDFFF for char in decoded)  # no half emoji
        previous = decoded
    assert previous == code


def test_a_malformed_escape_is_shown_as_written():
    assert partial_string_field('{"code": "a\\uZZZZb"}', "code") == "a\\uZZZZb"


def test_fed_fragment_by_fragment_the_reader_gives_exactly_the_code():
    code = 'print("\U0001F600 \u00e9\\n")\nx = {"a": 1}\t"quoted" \\ back'
    document = '{"other": "code", "code" : ' + json.dumps(code) + ', "after": "x"}'
    for size in (1, 2, 3, 7):
        reader = StreamedStringField("code")
        pieces = [reader.feed(document[i:i + size]) for i in range(0, len(document), size)]
        assert "".join(pieces) == code == reader.value
        assert reader.done


def _stream_arguments(code: str, fragment_size: int = 4) -> float:
    """What the run worker does per fragment of a code call's arguments: keep them, and read
    the code out of them (the old reader re-decoded the whole string every time)."""
    document = json.dumps({"code": code})
    call = ToolCallOut(index=0, id="call_1", name="python")
    reader = StreamedStringField("code")
    started = time.perf_counter()
    decoded = []
    for start in range(0, len(document), fragment_size):
        fragment = document[start:start + fragment_size]
        call.fragments.append(fragment)
        decoded.append(reader.feed(fragment))
    elapsed = time.perf_counter() - started
    assert "".join(decoded) == code and call.arguments == document
    return elapsed


def test_streaming_a_long_code_argument_takes_linear_time():
    line = 'print("value", 12345, "\\u00e9")  # a comment line\n'
    small = _stream_arguments(line * 2_000)    # ~100 kB in 4-character fragments
    large = _stream_arguments(line * 16_000)   # ~800 kB: 8 times as long
    # Linear: about 8 times the work; the old reader took about 64 times (and minutes).
    assert large < 6.0, large
    assert large < max(small, 0.01) * 24, (small, large)
