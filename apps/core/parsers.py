from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.utils.mediatypes import media_type_matches

JSON_PARSE_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please make sure your request "
    "body is valid JSON.)"
)


class StrictJSONParser(JSONParser):
    """JSON bodies only; duplicate detail of DRF's parse errors is replaced by OpenAI's wording."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json.load(stream)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(JSON_PARSE_MESSAGE) from exc


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
