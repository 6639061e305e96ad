from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

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
