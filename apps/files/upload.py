"""Streams multipart uploads to temporary files and stops as soon as the size limit is passed."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from apps.core.errors import InvalidRequestError, PayloadTooLargeError
from apps.core.openapi import validate_request


def too_large(received: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Maximum content size limit ({settings.FILE_UPLOAD_MAX_BYTES}) exceeded "
        f"({received} bytes read)",
        param="file",
    )


class LimitedUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs) -> None:
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int):
        self.received += len(raw_data)
        if self.received > settings.FILE_UPLOAD_MAX_BYTES:
            self.file.close()
            raise too_large(self.received)
        return super().receive_data_chunk(raw_data, start)


def _form_to_request(form) -> dict:
    """Rebuild the multipart form as the JSON-shaped CreateFileRequest the spec validates;
    the SDK spells nested fields with brackets (expires_after[anchor])."""
    request: dict = {}
    for key in form:
        value = form.get(key)
        if key.startswith("expires_after[") and key.endswith("]"):
            inner = key[len("expires_after["):-1]
            if inner == "seconds" and isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            request.setdefault("expires_after", {})[inner] = value
        else:
            request[key] = value
    return request


def validated_upload(form, uploaded) -> dict:
    """The CreateFileRequest an upload's form makes, checked against the spec."""
    request = _form_to_request(form)
    if uploaded is None:
        raise InvalidRequestError("Missing required parameter: 'file'.", param="file",
                                  code="missing_required_parameter")
    request["file"] = "<binary>"
    validate_request("CreateFileRequest", request)
    return request
