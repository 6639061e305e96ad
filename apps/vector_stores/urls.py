from django.urls import path

from apps.vector_stores import views

store = "vector_stores/<str:store_id>"
urlpatterns = [
    path("vector_stores", views.VectorStoreListView.as_view()),
    path(store, views.VectorStoreDetailView.as_view()),
    path(f"{store}/search", views.VectorStoreSearchView.as_view()),
    path(f"{store}/files", views.VectorStoreFileListView.as_view()),
    path(f"{store}/files/<str:file_id>", views.VectorStoreFileDetailView.as_view()),
    path(f"{store}/files/<str:file_id>/content", views.VectorStoreFileContentView.as_view()),
    path(f"{store}/file_batches", views.FileBatchCreateView.as_view()),
    path(f"{store}/file_batches/<str:batch_id>", views.FileBatchDetailView.as_view()),
    path(f"{store}/file_batches/<str:batch_id>/cancel", views.FileBatchCancelView.as_view()),
    path(f"{store}/file_batches/<str:batch_id>/files", views.FileBatchFilesView.as_view()),
]
