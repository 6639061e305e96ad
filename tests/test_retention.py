"""Retention and storage: files past `expires_after` are deleted by beat with their chunks,
uploads are stored readable by the server only, and the published dev SECRET_KEY is refused
where the server is reachable from other machines."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import openai

BASE_DIR = Path(__file__).resolve().parent.parent


def test_an_expired_file_is_deleted_by_beat_with_its_chunks(client, orm):
    from apps.files.models import File
    from apps.vector_stores.models import Chunk

    uploaded = client.files.create(file=("old.txt", io.BytesIO(b"words that expire")), purpose="assistants",
                                   expires_after={"anchor": "created_at", "seconds": 3600})
    kept = client.files.create(file=("kept.txt", io.BytesIO(b"words that stay")), purpose="assistants")
    store = client.vector_stores.create(file_ids=[uploaded.id, kept.id])
    deadline = time.monotonic() + 30
    while client.vector_stores.retrieve(store.id).file_counts.completed < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    path = File.objects.get(pk=uploaded.id).content.path
    File.objects.filter(pk=uploaded.id).update(expires_at=int(time.time()) - 1)  # an hour later
    deadline = time.monotonic() + 15
    while File.objects.filter(pk=uploaded.id).exists():
        assert time.monotonic() < deadline, "beat did not delete the expired file"
        time.sleep(0.2)
    assert not Chunk.objects.filter(file_id=uploaded.id).exists()
    assert Chunk.objects.filter(file_id=kept.id).exists()
    try:
        client.files.retrieve(uploaded.id)
        raise AssertionError("the expired file is still served")
    except openai.NotFoundError:
        pass
    deadline = time.monotonic() + 5
    while os.path.exists(path):
        assert time.monotonic() < deadline, "the expired file's bytes stayed on disk"
        time.sleep(0.1)


def test_uploaded_files_are_stored_readable_by_the_server_only(client, orm):
    from apps.files.models import File

    uploaded = client.files.create(file=("private.txt", io.BytesIO(b"secret")), purpose="assistants")
    path = Path(File.objects.get(pk=uploaded.id).content.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def _check(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "HOST")}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, capture_output=True,
                          text=True, env={**clean, **env}, timeout=120)


def test_the_dev_secret_key_is_refused_off_loopback_without_debug():
    refused = _check(HOST="0.0.0.0")
    assert refused.returncode != 0
    assert "SECRET_KEY is the published development key" in refused.stderr
    assert _check(HOST="127.0.0.1").returncode == 0
    assert _check(HOST="0.0.0.0", SECRET_KEY="a-real-secret").returncode == 0
    assert _check(HOST="0.0.0.0", DEBUG="true").returncode == 0
