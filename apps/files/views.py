from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils.http import content_disposition_header
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from apps.core.pagination import FILES
from apps.core.streams import streaming_response
from apps.core.views import ApiView
from apps.files import services
from apps.files.serializers import render_file
from apps.files.upload import LimitedUploadHandler, too_large

# Multipart framing around the file part is small; anything beyond this allowance is refused
# before a byte of the body is read.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class FileListView(ApiView):
    parser_classes = [MultiPartParser]

    def get(self, request):
        queryset = services.list_files(self.project, request.query_params.get("purpose"))
        return Response(self.page(queryset, render_file, FILES))

    def post(self, request):
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > settings.FILE_UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES:
            raise too_large(declared)
        request._request.upload_handlers = [LimitedUploadHandler(request._request)]
        uploaded = request.FILES.get("file")
        created = services.create_file(self.project, request.data, uploaded)
        return Response(render_file(created))


class FileDetailView(ApiView):
    def get(self, request, file_id: str):
        return Response(render_file(services.get_file(self.project, file_id)))

    def delete(self, request, file_id: str):
        deleted_id = services.delete_file(self.project, file_id)
        return Response({"id": deleted_id, "object": "file", "deleted": True})


async def _chunks(handle, chunk_size: int = 1024 * 1024):
    """Read in a worker thread, one chunk at a time: under ASGI a synchronous iterator would be
    collected whole into memory before sending."""
    try:
        while chunk := await sync_to_async(handle.read)(chunk_size):
            yield chunk
    finally:
        await sync_to_async(handle.close)()


class FileContentView(ApiView):
    def get(self, request, file_id: str):
        file = services.get_file(self.project, file_id)
        response = streaming_response(
            _chunks(file.content.open("rb")),
            content_type=file.mime_type or "application/octet-stream",
        )
        response["Content-Length"] = str(file.bytes)
        response["Content-Disposition"] = content_disposition_header(True, file.filename)
        return response
