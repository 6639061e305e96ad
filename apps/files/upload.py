"""Streams multipart uploads to temporary files and stops as soon as the size limit is passed."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from apps.core.errors import PayloadTooLargeError


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
