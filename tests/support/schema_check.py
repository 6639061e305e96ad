"""Checks every JSON body the server returns against the OpenAPI document's schemas, through an
httpx event hook on the SDK's own http client (a supported SDK option, not a patch)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from apps.core.openapi import response_errors, response_schema_for


class SchemaRecorder:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked = 0

    def check_body(self, method: str, path: str, status: int, body: object) -> None:
        schema = "ErrorResponse" if status >= 400 else response_schema_for(method, path)
        if schema is None:
            return
        self.checked += 1
        for error in response_errors(schema, body):
            self.problems.append(f"{method} {path} -> {status} {schema}: {error}")

    def check(self, response) -> None:
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            return
        response.read()
        request = response.request
        self.check_body(
            request.method, urlsplit(str(request.url)).path, response.status_code,
            json.loads(response.content),
        )

    def assert_clean(self) -> None:
        assert not self.problems, "responses that break the OpenAPI schemas:\n" + "\n".join(
            self.problems
        )
