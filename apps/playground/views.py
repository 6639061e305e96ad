"""Serves the Playground's static files (committed in the repo, no build step) under a strict
Content-Security-Policy, and the staff hand-off that opens it for a chosen project."""

from __future__ import annotations

from pathlib import Path

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.static import serve

from apps.core.errors import APIError
from apps.core.models import Project
from apps.playground.services import issue_staff_key

ASSETS = Path(__file__).resolve().parent / "static" / "playground"
# Nothing but this origin: no CDN, no web fonts, no inline script; images of the API's files
# arrive as blob: URLs made from authenticated fetches.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def _secured(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "same-origin"
    response["X-Frame-Options"] = "DENY"
    return response


def to_index(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect("/playground/")


def index(request: HttpRequest) -> HttpResponse:
    response = serve(request, "index.html", document_root=ASSETS)
    response["Cache-Control"] = "no-cache"
    return _secured(response)


def asset(request: HttpRequest, path: str) -> HttpResponse:
    response = serve(request, path, document_root=ASSETS)
    # Revalidated on each load (a 304 when unchanged), so an upgrade is never half-cached.
    response["Cache-Control"] = "no-cache"
    return _secured(response)


@require_http_methods(["GET", "POST"])
@staff_member_required(login_url="/admin/login/")
def staff(request: HttpRequest) -> HttpResponse:
    """A staff member picks a project; the answer carries that project's key in the page body
    (never the URL), which handoff.js keeps in local storage before loading the Playground."""
    projects = Project.objects.order_by("name")
    if request.method == "POST":
        try:
            raw = issue_staff_key(request.POST.get("project", ""), request.user.get_username())
        except APIError as error:
            return _secured(render(request, "playground/staff.html",
                                   {"projects": projects, "error": error.message}, status=400))
        response = render(request, "playground/handoff.html", {"key": raw})
        response["Cache-Control"] = "no-store"
        return _secured(response)
    return _secured(render(request, "playground/staff.html", {"projects": projects}))
