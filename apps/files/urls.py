from django.urls import path

from apps.files import views

urlpatterns = [
    path("files", views.FileListView.as_view()),
    path("files/<str:file_id>", views.FileDetailView.as_view()),
    path("files/<str:file_id>/content", views.FileContentView.as_view()),
]
