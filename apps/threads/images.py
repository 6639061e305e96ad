"""Checks on the images a message carries: an `image_file` must be an image of the caller's
project within IMAGE_FILE_MAX_BYTES; an `image_url` may not point at this network's own
addresses (loopback, link-local, private), since the model server fetching it would then reach
inside the deployment, unless IMAGE_URL_ALLOW_PRIVATE says this is a private deployment."""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from django.conf import settings

from apps.core.errors import InvalidRequestError
from apps.core.models import Project
from apps.files.models import File

# PNG, JPEG, GIF, WEBP: the types OpenAI's vision models accept.
IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                    (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))
RESOLVE_TIMEOUT_SECONDS = 2.0
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="image-url-resolve")


def sniff_image_type(head: bytes) -> str | None:
    for signature, mime in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_image_file(project: Project, file_id: str, param: str) -> None:
    file = File.objects.owned(project, file_id)
    if file is None:
        raise InvalidRequestError(f"Invalid '{param}': no file found with id '{file_id}'.", param=param)
    limit = settings.IMAGE_FILE_MAX_BYTES
    if file.bytes > limit:
        raise InvalidRequestError(
            f"Invalid '{param}': file '{file_id}' is {file.bytes} bytes; images may be at most "
            f"{limit} bytes.", param=param, code="invalid_value")
    with file.content.open("rb") as handle:
        head = handle.read(16)
    if sniff_image_type(head) is None:
        raise InvalidRequestError(
            f"Invalid '{param}': file '{file_id}' is not an image (PNG, JPEG, GIF or WEBP).",
            param=param, code="invalid_value")


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_unspecified
            or ip.is_reserved or ip.is_multicast)


def _resolve(host: str) -> list[str]:
    try:
        future = _resolver.submit(socket.getaddrinfo, host, None, proto=socket.IPPROTO_TCP)
        return [info[4][0] for info in future.result(timeout=RESOLVE_TIMEOUT_SECONDS)]
    except (OSError, UnicodeError, FutureTimeout):
        return []  # a name this server cannot resolve names none of its addresses


def check_image_url(url: str, param: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "data":
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(f"Invalid '{param}': the image URL must be an http(s) URL.",
                                  param=param, code="invalid_value")
    if settings.IMAGE_URL_ALLOW_PRIVATE:
        return
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = ["127.0.0.1"] if host == "localhost" or host.endswith(".localhost") else _resolve(host)
    if any(_internal(address) for address in addresses):
        raise InvalidRequestError(
            f"Invalid '{param}': the image URL points at a loopback, link-local or private address "
            f"({host}), which this server does not fetch from; set IMAGE_URL_ALLOW_PRIVATE=true "
            "on a private deployment to allow it.", param=param, code="invalid_value")
