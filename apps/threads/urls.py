from django.urls import path

from apps.threads import views

urlpatterns = [
    path("threads", views.ThreadCreateView.as_view()),
    path("threads/<str:thread_id>", views.ThreadDetailView.as_view()),
    path("threads/<str:thread_id>/messages", views.MessageListView.as_view()),
    path("threads/<str:thread_id>/messages/<str:message_id>", views.MessageDetailView.as_view()),
]
