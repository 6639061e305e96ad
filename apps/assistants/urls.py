from django.urls import path

from apps.assistants import views

urlpatterns = [
    path("assistants", views.AssistantListView.as_view()),
    path("assistants/<str:assistant_id>", views.AssistantDetailView.as_view()),
]
