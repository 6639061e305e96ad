"""Code Interpreter input streamed out of JSON arguments that are still arriving."""

from __future__ import annotations

import json

from workers.runs.partial_json import partial_string_field


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
