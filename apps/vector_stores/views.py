from rest_framework.response import Response

from apps.core.fields import given
from apps.core.openapi import validate_request
from apps.core.views import ApiView
from apps.vector_stores import services
from apps.vector_stores.models import VectorStore
from apps.vector_stores.rendering import render_batch, render_store_file, render_vector_store
from apps.vector_stores.search import bound_filters, bound_queries, rewrite_query, search


class VectorStoreListView(ApiView):
    def get(self, request):
        queryset = VectorStore.objects.restrict(self.project)
        return Response(self.page(queryset, render_vector_store))

    def post(self, request):
        body = self.validated("CreateVectorStoreRequest")
        store = services.create_store(self.project, **given(body, (
            "file_ids", "name", "description", "metadata", "expires_after", "chunking_strategy")))
        return Response(render_vector_store(store))


class VectorStoreDetailView(ApiView):
    def get(self, request, store_id: str):
        return Response(render_vector_store(services.get_store(self.project, store_id)))

    def post(self, request, store_id: str):
        body = self.validated("UpdateVectorStoreRequest")
        store = services.modify_store(self.project, store_id,
                                      **given(body, ("name", "metadata", "expires_after")))
        return Response(render_vector_store(store))

    def delete(self, request, store_id: str):
        deleted_id = services.delete_store(self.project, store_id)
        return Response({"id": deleted_id, "object": "vector_store.deleted", "deleted": True})


class VectorStoreFileListView(ApiView):
    def get(self, request, store_id: str):
        queryset = services.list_store_files(self.project, store_id, request.query_params.get("filter"))
        return Response(self.page(queryset, render_store_file,
                                 cursor_field="file_id"))

    def post(self, request, store_id: str):
        body = self.validated("CreateVectorStoreFileRequest")
        entry = services.create_store_file(self.project, store_id, **given(body, (
            "file_id", "chunking_strategy", "attributes")))
        return Response(render_store_file(entry))


class VectorStoreFileDetailView(ApiView):
    def get(self, request, store_id: str, file_id: str):
        entry = services.get_store_file(self.project, store_id, file_id)
        return Response(render_store_file(entry), headers=self.poll_headers())

    def post(self, request, store_id: str, file_id: str):
        body = self.validated("UpdateVectorStoreFileAttributesRequest")
        entry = services.update_store_file(self.project, store_id, file_id,
                                           attributes=body["attributes"])
        return Response(render_store_file(entry))

    def delete(self, request, store_id: str, file_id: str):
        deleted_id = services.delete_store_file(self.project, store_id, file_id)
        return Response({"id": deleted_id, "object": "vector_store.file.deleted", "deleted": True})


class VectorStoreFileContentView(ApiView):
    def get(self, request, store_id: str, file_id: str):
        return Response(services.store_file_content(self.project, store_id, file_id))


class FileBatchCreateView(ApiView):
    def post(self, request, store_id: str):
        body = self.validated("CreateVectorStoreFileBatchRequest")
        batch = services.create_batch(self.project, store_id, **given(body, (
            "file_ids", "files", "chunking_strategy", "attributes")))
        return Response(render_batch(batch))


class FileBatchDetailView(ApiView):
    def get(self, request, store_id: str, batch_id: str):
        batch = services.get_batch(self.project, store_id, batch_id)
        return Response(render_batch(batch), headers=self.poll_headers())


class FileBatchCancelView(ApiView):
    def post(self, request, store_id: str, batch_id: str):
        return Response(render_batch(services.cancel_batch(self.project, store_id, batch_id)))


class FileBatchFilesView(ApiView):
    def get(self, request, store_id: str, batch_id: str):
        batch = services.get_batch(self.project, store_id, batch_id)
        queryset = services.list_store_files(self.project, store_id,
                                             request.query_params.get("filter"), batch=batch)
        return Response(self.page(queryset, render_store_file,
                                 cursor_field="file_id"))


class VectorStoreSearchView(ApiView):
    def post(self, request, store_id: str):
        body = self.body()
        if isinstance(body, dict) and body.get("filters") is not None:
            bound_filters(body["filters"])
        validate_request("VectorStoreSearchRequest", body)
        bound_queries(body["query"])
        queries = body["query"] if isinstance(body["query"], list) else [body["query"]]
        store = services.get_store(self.project, store_id)
        if body.get("rewrite_query"):
            queries = [rewrite_query(query) for query in queries]
        ranking = body.get("ranking_options") or {}
        hits = search([store.pk], queries, max_results=body.get("max_num_results") or 10,
                      score_threshold=ranking.get("score_threshold") or 0.0,
                      filters=body.get("filters"))
        return Response({
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [{"file_id": hit.file_id, "filename": hit.filename, "score": hit.score,
                      "attributes": hit.attributes,
                      "content": [{"type": "text", "text": hit.text}]} for hit in hits],
            "has_more": False,
            "next_page": None,
        })
