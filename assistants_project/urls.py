from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

from apps.core.metrics import metrics_view
from apps.core.views import healthz, readyz

api_patterns = [
    path("", include("apps.assistants.urls")),
    path("", include("apps.runs.urls")),
    path("", include("apps.threads.urls")),
    path("", include("apps.files.urls")),
    path("", include("apps.vector_stores.urls")),
]

urlpatterns = [
    path("v1/", include(api_patterns)),
    path("admin/", admin.site.urls),
    path("", include("apps.playground.urls")),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    # The admin's own CSS and JS, straight from the installed apps (no collectstatic step).
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]

handler404 = "apps.core.exception_handler.json_not_found"
handler500 = "apps.core.exception_handler.json_server_error"
