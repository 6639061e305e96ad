from __future__ import annotations

from asgiref.sync import sync_to_async
from django.utils.http import content_disposition_header
from rest_framework.response import Response

from apps.core.pagination import FILES
from apps.core.parsers import StrictMultiPartParser
from apps.core.streams import streaming_response
from apps.core.views import ApiView
from apps.files import deletion, services
from apps.files.rendering import render_file
from apps.files.upload import LimitedUploadHandler, validated_upload


class FileListView(ApiView):
    parser_classes = [StrictMultiPartParser]

    def get(self, request):
        queryset = services.list_files(self.project, request.query_params.get("purpose"))
        return Response(self.page(queryset, render_file, FILES))

    def post(self, request):
        # The web edge (apps/core/edge.py) already refused a body larger than the upload limit
        # plus multipart framing, before it was read; this handler holds the file part itself
        # to the limit.
        request._request.upload_handlers = [LimitedUploadHandler(request._request)]
        uploaded = request.FILES.get("file")
        body = validated_upload(request.data, uploaded)
        created = services.create_file(self.project, uploaded=uploaded, purpose=body["purpose"],
                                       expires_after=body.get("expires_after"))
        return Response(render_file(created))


class FileDetailView(ApiView):
    def get(self, request, file_id: str):
        return Response(render_file(services.get_file(self.project, file_id)))

    def delete(self, request, file_id: str):
        deleted_id = deletion.delete_file(self.project, file_id)
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
