from django.urls import path, re_path

from apps.playground import views

urlpatterns = [
    path("playground", views.to_index),
    path("playground/", views.index),
    path("playground/staff/", views.staff),
    re_path(r"^playground/assets/(?P<path>[\w.-]+\.(?:js|css))$", views.asset),
]
