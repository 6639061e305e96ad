"""GET /v1/threads: our extension of OpenAI's API (which has no way to list threads). The
project's threads, newest first, paged like every list, with a search on metadata and on the
first message."""

from __future__ import annotations

import pytest

BETA = {"OpenAI-Beta": "assistants=v2"}


def _list(http, **params) -> dict:
    response = http.get("/threads", params=params, headers=BETA)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def threads(other_client):
    """Five threads of a fresh project, oldest first."""
    made = []
    for n in range(5):
        made.append(other_client.beta.threads.create(
            metadata={"customer": f"c-{n}", "tier": "gold" if n == 1 else "basic"},
            messages=[{"role": "user", "content": f"Question number {n} about invoices"},
                      {"role": "user", "content": "follow-up zebra"}]))
    return other_client, made


@pytest.fixture
def project_http(threads):
    import httpx2

    client, _ = threads
    with httpx2.Client(base_url=str(client.base_url), timeout=30,
                       headers={"Authorization": f"Bearer {client.api_key}"}) as raw:
        yield raw


def test_it_lists_the_projects_threads_newest_first(threads, project_http):
    _, made = threads
    page = _list(project_http)
    assert page["object"] == "list"
    assert [t["id"] for t in page["data"]] == [t.id for t in reversed(made)]
    assert page["data"][0]["object"] == "thread" and page["data"][0]["metadata"]["customer"] == "c-4"
    assert page["first_id"] == made[-1].id and page["last_id"] == made[0].id and not page["has_more"]


def test_it_pages_with_after_and_before(threads, project_http):
    _, made = threads
    first = _list(project_http, limit=2)
    assert [t["id"] for t in first["data"]] == [made[4].id, made[3].id] and first["has_more"]
    second = _list(project_http, limit=2, after=first["last_id"])
    assert [t["id"] for t in second["data"]] == [made[2].id, made[1].id]
    back = _list(project_http, limit=2, before=second["first_id"])
    assert [t["id"] for t in back["data"]] == [made[4].id, made[3].id]
    oldest = _list(project_http, limit=2, order="asc")
    assert [t["id"] for t in oldest["data"]] == [made[0].id, made[1].id]


def test_it_searches_metadata_and_the_first_message_only(threads, project_http):
    _, made = threads
    assert [t["id"] for t in _list(project_http, search="GOLD")["data"]] == [made[1].id]
    assert [t["id"] for t in _list(project_http, search="number 3")["data"]] == [made[3].id]
    assert _list(project_http, search="zebra")["data"] == []  # a later message is not searched
    assert len(_list(project_http, search="invoices")["data"]) == 5


def test_it_never_shows_another_projects_threads(threads, http):
    _, made = threads
    mine = {t["id"] for t in _list(http, limit=100)["data"]}
    assert not mine & {t.id for t in made}


def test_it_checks_its_parameters(project_http):
    response = project_http.get("/threads", params={"search": "x" * 257}, headers=BETA)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "search"
    response = project_http.get("/threads", params={"limit": 101}, headers=BETA)
    assert response.status_code == 400 and response.json()["error"]["param"] == "limit"
    assert project_http.get("/threads").status_code == 400  # the beta header, as on every /threads
