"""Session caps, in process against the stack's real Redis: no container is started, so these
cover in milliseconds the cases the end-to-end cap test (tests/sandbox/test_limits.py) can only
touch once."""

from __future__ import annotations

import time
import uuid

import pytest

from workers.sandbox.admission import Admission, SandboxBusy


@pytest.fixture
def admission(stack):
    import redis

    store = redis.Redis.from_url(stack.env["REDIS_URL"])
    namespace = f"admission-{uuid.uuid4().hex[:8]}"
    yield Admission(store, namespace)
    for key in store.scan_iter(match=f"sandbox:live:{namespace}*"):
        store.delete(key)
    store.close()


def _admit(admission: Admission, project: str | None, count: int) -> list[str]:
    names = []
    for _ in range(count):
        name = f"s-{uuid.uuid4().hex[:8]}"
        admission.admit(name, project)
        names.append(name)
        time.sleep(0.002)  # distinct recency scores
    return names


def test_a_session_that_fits_evicts_nothing(admission):
    _admit(admission, "p", 2)
    assert admission.make_room("new", "p", max_total=3, max_per_project=3) == []


def test_the_least_recently_used_idle_session_of_the_project_goes_first(admission):
    old, recent = _admit(admission, "p", 2)
    admission.touch(old)  # now `recent` is the least recently used
    _admit(admission, "q", 1)
    assert admission.make_room("new", "p", max_total=10, max_per_project=2) == [recent]
    assert admission.make_room("new", "q", max_total=10, max_per_project=2) == []


def test_the_total_cap_evicts_across_projects_after_the_project_cap(admission):
    first_q = _admit(admission, "q", 1)[0]
    _admit(admission, "p", 1)
    # Project p has room (cap 5), the deployment not (cap 2): the oldest of all goes, q's.
    assert admission.make_room("new", "p", max_total=2, max_per_project=5) == [first_q]


def test_busy_sessions_are_never_evicted_and_all_busy_refuses_with_the_cap_named(admission):
    names = _admit(admission, "p", 2)
    with admission.busy(names[0], 30):
        assert admission.make_room("new", "p", max_total=10, max_per_project=2) == [names[1]]
    admission.admit("new", "p")
    with admission.busy(names[0], 30), admission.busy("new", 30), \
            pytest.raises(SandboxBusy, match="All 2 sandbox sessions per project are running code"):
        admission.make_room("newer", "p", max_total=10, max_per_project=2)


def test_a_session_never_evicts_itself_and_a_release_frees_its_place(admission):
    only = _admit(admission, "p", 1)[0]
    with pytest.raises(SandboxBusy):
        admission.make_room(only, "p", max_total=10, max_per_project=1)
    admission.release(only)
    assert admission.make_room("new", "p", max_total=1, max_per_project=1) == []


def test_a_busy_mark_outlives_a_crashed_holder_only_until_it_expires(admission):
    name = _admit(admission, "p", 1)[0]
    key = admission._busy_key(name)
    admission.redis.incr(key)  # a worker died inside `busy`: nobody decrements
    admission.redis.expire(key, 1)
    with pytest.raises(SandboxBusy):
        admission.make_room("new", "p", max_total=10, max_per_project=1)
    time.sleep(1.2)
    assert admission.make_room("new", "p", max_total=10, max_per_project=1) == [name]
