"""Serves the Playground's static files (committed in the repo, no build step) under a strict
Content-Security-Policy, and the staff hand-off that opens it for a chosen project."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from apps.core.errors import APIError
from apps.core.models import Project
from apps.playground.services import issue_staff_key

ASSETS = Path(__file__).resolve().parent / "static" / "playground"
# Nothing but this origin: no CDN, no web fonts, no inline script; images of the API's files
# arrive as blob: URLs made from authenticated fetches.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}


def _secured(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "same-origin"
    response["X-Frame-Options"] = "DENY"
    return response


def to_index(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect("/playground/")


@cache
def _asset(name: str) -> tuple[bytes, str, str] | None:
    """A committed file's bytes, type and ETag, read once per process (they change only with
    a deploy)."""
    path = (ASSETS / name).resolve()
    if path.parent != ASSETS or not path.is_file():
        return None
    data = path.read_bytes()
    kind = TYPES.get(path.suffix, "application/octet-stream")
    return data, kind, '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


def _serve(request: HttpRequest, name: str) -> HttpResponse:
    found = _asset(name)
    if found is None:
        raise Http404(name)
    data, kind, etag = found
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(data, content_type=kind)
    response["ETag"] = etag
    # Revalidated on each load (a 304 when unchanged), so an upgrade is never half-cached.
    response["Cache-Control"] = "no-cache"
    return _secured(response)


def index(request: HttpRequest) -> HttpResponse:
    return _serve(request, "index.html")


def asset(request: HttpRequest, path: str) -> HttpResponse:
    return _serve(request, path)


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
