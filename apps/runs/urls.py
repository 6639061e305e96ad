from django.urls import path

from apps.runs import views

urlpatterns = [
    path("threads/runs", views.ThreadAndRunView.as_view()),
    path("threads/<str:thread_id>/runs", views.RunListView.as_view()),
    path("threads/<str:thread_id>/runs/<str:run_id>", views.RunDetailView.as_view()),
    path("threads/<str:thread_id>/runs/<str:run_id>/cancel", views.RunCancelView.as_view()),
    path("threads/<str:thread_id>/runs/<str:run_id>/submit_tool_outputs",
         views.SubmitToolOutputsView.as_view()),
    path("threads/<str:thread_id>/runs/<str:run_id>/steps", views.RunStepListView.as_view()),
    path("threads/<str:thread_id>/runs/<str:run_id>/steps/<str:step_id>",
         views.RunStepDetailView.as_view()),
]
