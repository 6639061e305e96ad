"""Request parsing: JSON and multipart bodies, and the one check that keeps text Postgres cannot
store (NUL) or Python cannot encode (lone UTF-16 surrogates) out of every request. Bodies, path
parameters and query strings all pass `reject_unstorable_text` here, so no service has to."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.utils.mediatypes import media_type_matches

from apps.core.errors import InvalidRequestError
from apps.core.openapi_messages import param_path

JSON_PARSE_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please make sure your request "
    "body is valid JSON.)"
)
# Far deeper than any legitimate body (a json_schema response format nests a few levels), and
# shallow enough that validators and walkers never approach Python's recursion limit.
MAX_JSON_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _complaint(name: str, text: str, holder: str = "string") -> InvalidRequestError:
    bad = _UNSTORABLE.search(text)
    assert bad is not None
    if bad.group() == "\x00":
        what = "a NUL character (\\u0000), which cannot be stored"
    else:
        what = f"a lone UTF-16 surrogate (\\u{ord(bad.group()):04x}), which is not valid Unicode"
    return InvalidRequestError(f"Invalid '{name}': {holder} contains {what}.", param=name,
                               code="invalid_value")


def reject_unstorable_text(value: object, path: tuple = ()) -> None:
    """Raise a 400 naming the first string (or object key) in `value` holding NUL or a lone
    surrogate, the first non-finite number, or the first place nested deeper than MAX_JSON_DEPTH. Iterative: hostile nesting
    must not become a RecursionError."""
    stack: list[tuple[object, tuple]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if len(where) - len(path) > MAX_JSON_DEPTH:
            name = param_path(where[:len(path) + 1]) or "body"
            raise InvalidRequestError(
                f"Invalid '{name}': nested too deeply. Expected at most {MAX_JSON_DEPTH} levels of "
                "objects and arrays.", param=name, code="invalid_value")
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                raise _complaint(param_path(where) or "body", node)
        elif isinstance(node, float) and not math.isfinite(node):
            # `1e400` parses as infinity, which neither Postgres JSON nor a JSON answer holds.
            name = param_path(where) or "body"
            raise InvalidRequestError(f"Invalid '{name}': number out of range. Expected a finite "
                                      "number.", param=name, code="invalid_value")
        elif isinstance(node, dict):
            for key, inner in node.items():
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    raise _complaint(param_path(where) or "body", key, "a key")
                stack.append((inner, (*where, key)))
        elif isinstance(node, list):
            stack.extend((inner, (*where, index)) for index, inner in enumerate(node))


def reject_unstorable_params(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> None:
    """Path parameters and query strings: the parameter's own name is the field."""
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        if isinstance(name, str) and _UNSTORABLE.search(name):
            raise _complaint("query", name, "a parameter name")
        if isinstance(value, str) and _UNSTORABLE.search(value):
            raise _complaint(name, value)


def _not_json(constant: str) -> float:
    """Python's json reads NaN and Infinity; JSON has no such values."""
    raise ValueError(f"{constant} is not JSON")


class StrictJSONParser(JSONParser):
    """JSON bodies only; duplicate detail of DRF's parse errors is replaced by OpenAI's wording."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = json.load(stream, parse_constant=_not_json)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(JSON_PARSE_MESSAGE) from exc
        reject_unstorable_text(data)
        return data


class StrictMultiPartParser(MultiPartParser):
    """Multipart uploads: form fields obey the same text rule as JSON bodies (Django already
    drops NUL from file names)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        reject_unstorable_params((name, value) for name, values in parsed.data.lists()
                                 for value in values)
        return parsed


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Every API answer is JSON (or raw bytes, chosen by the view), whatever `Accept` says:
    the SDK sends `Accept: application/binary` for file content."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if media_type_matches(parser.media_type, request.content_type):
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
