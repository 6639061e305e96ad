"""Sandbox sessions against the real Docker daemon: state, files, figures, limits."""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.docker  # every test here runs code in a sandbox


def test_state_persists_within_a_session_and_not_across(manager, session):
    assert manager.execute(session, "x = 41").error is None
    assert manager.execute(session, "print(x + 1)").stdout == "42\n"
    other = f"other-{uuid.uuid4().hex[:8]}"
    try:
        result = manager.execute(other, "print(x)")
        assert result.error["name"] == "NameError"
    finally:
        manager.close_session(other)


def test_the_last_expression_is_echoed_like_a_notebook(manager, session):
    assert manager.execute(session, "a = 6\na * 7").stdout == "42\n"


def test_errors_come_back_with_a_traceback_and_the_session_survives(manager, session):
    manager.execute(session, "kept = 'yes'")
    failed = manager.execute(session, "1 / 0")
    assert failed.error["name"] == "ZeroDivisionError" and "Traceback" in failed.error["traceback"]
    assert manager.execute(session, "print(kept)").stdout == "yes\n"


def test_figures_come_back_as_png_and_files_are_reported(manager, session):
    result = manager.execute(session, (
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
        "open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')"))
    assert result.error is None
    assert len(result.images) == 1 and result.images[0].startswith(b"\x89PNG")
    assert [f["path"] for f in result.files] == ["/mnt/data/out.csv"]
    assert manager.get_file(session, "/mnt/data/out.csv") == b"a,b\n1,2\n"


def test_put_file_then_pandas_reads_it(manager, session):
    manager.put_file(session, "data.csv", b"x,y\n1,2\n3,4\n")
    result = manager.execute(session, "import pandas as pd\nprint(pd.read_csv('/mnt/data/data.csv').y.sum())")
    assert result.stdout == "6\n"


def test_an_infinite_loop_is_interrupted_and_the_session_stays_usable(manager, session):
    manager.execute(session, "survivor = 7")
    started = time.monotonic()
    result = manager.execute(session, "while True:\n    pass", timeout=2)
    assert result.error["name"] == "TimeoutError"
    assert time.monotonic() - started < 6
    assert manager.execute(session, "print(survivor)").stdout == "7\n"


def test_there_is_no_network(manager, session, host_listener):
    host, port = host_listener
    result = manager.execute(session, (
        "import os, socket\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        "try:\n    socket.gethostbyname('example.com')\n    print('resolved')\n"
        "except OSError as e:\n    print('no dns')\n"
        f"for address in ('127.0.0.1', {host!r}):\n"
        "    s = socket.socket(); s.settimeout(2)\n"
        "    try:\n"
        f"        s.connect((address, {port})); print('connected', address)\n"
        "    except OSError:\n        print('unreachable', address)\n"))
    lines = result.stdout.splitlines()
    assert lines[0] == "['lo']"
    assert lines[1] == "no dns"
    assert lines[2:] == ["unreachable 127.0.0.1", f"unreachable {host}"]


def test_the_root_filesystem_is_read_only_and_privileges_are_gone(manager, session):
    result = manager.execute(session, (
        "import os\n"
        "for path in ('/etc/owned', '/opt/sandbox/x', '/usr/x'):\n"
        "    try:\n        open(path, 'w'); print('wrote', path)\n"
        "    except OSError as e:\n        print('denied', path)\n"
        "open('/tmp/ok', 'w').write('1'); open('/mnt/data/ok', 'w').write('1')\n"
        "print(os.getuid(), os.path.exists('/var/run/docker.sock'))\n"
        "try:\n    open('/etc/shadow').read(); print('read shadow')\n"
        "except OSError:\n    print('shadow denied')\n"
        "try:\n    os.setuid(0); print('became root')\n"
        "except OSError:\n    print('setuid denied')\n"
        "status = open('/proc/self/status').read()\n"
        "print([l.split()[1] for l in status.splitlines() if l.startswith(('CapEff', 'NoNewPrivs'))])\n"))
    assert result.error is None, result.error
    assert result.stdout.splitlines() == [
        "denied /etc/owned", "denied /opt/sandbox/x", "denied /usr/x", "1000 False",
        "shadow denied", "setuid denied", "['0000000000000000', '1']"]


def test_a_fork_bomb_is_contained(manager, session):
    other = f"bystander-{uuid.uuid4().hex[:8]}"
    try:
        manager.execute(other, "alive = True")
        result = manager.execute(session, (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
            timeout=3)
        assert result.error is not None
        started = time.monotonic()
        assert manager.execute(other, "print(alive)").stdout == "True\n"
        assert time.monotonic() - started < 5
        assert manager.execute(session, "print('recovered')").stdout == "recovered\n"
    finally:
        manager.close_session(other)


def test_a_memory_bomb_is_contained(manager, session):
    result = manager.execute(session, "hog = bytearray(1024 ** 3)\nhog[::4096] = b'x' * len(hog[::4096])")
    assert result.error is not None
    assert manager.execute(session, "print('after')").stdout == "after\n"


def test_filling_the_disk_stops_at_the_limit(manager, session):
    result = manager.execute(session, (
        "written = 0\n"
        "try:\n"
        "    with open('/mnt/data/fill', 'wb') as f:\n"
        "        while True:\n            f.write(b'0' * (1 << 20)); written += 1\n"
        "except OSError as e:\n    print('stopped', e.errno)\n"
        "print(written <= 64)"), timeout=20)
    assert result.stdout.splitlines() == ["stopped 28", "True"], result
    assert manager.execute(session, "import os; os.remove('/mnt/data/fill'); print('ok')").stdout == "ok\n"


def test_idle_sessions_are_reaped_after_the_idle_limit(manager):
    name = f"idle-{uuid.uuid4().hex[:8]}"
    busy = f"busy-{uuid.uuid4().hex[:8]}"
    manager.config.idle_timeout = 1.5
    try:
        manager.execute(name, "1")
        container_id = manager.sandbox_id(name)
        # Sessions other tests left idle may be reaped too: only ours are asserted on.
        assert name not in manager.reap_idle()
        time.sleep(1.0)
        manager.execute(busy, "1")
        time.sleep(0.8)
        reaped = manager.reap_idle()
        assert name in reaped and busy not in reaped
        assert not manager.has_session(name) and manager.has_session(busy)
        import docker

        with pytest.raises(docker.errors.NotFound):
            docker.from_env().containers.get(container_id)
    finally:
        manager.config.idle_timeout = 3600
        manager.close_session(busy)


def test_the_warm_pool_hands_out_a_started_container(manager):
    manager.config.warm_pool_size = 1
    try:
        manager.fill_pool()
        pooled = {m.decode() for m in manager.redis.smembers(manager.config.pool_key)}
        assert pooled
        name = f"pool-{uuid.uuid4().hex[:8]}"
        assert manager.sandbox_id(name) in pooled
        manager.close_session(name)
    finally:
        manager.config.warm_pool_size = 0
        manager.shutdown()


@pytest.fixture
def host_listener():
    """TCP servers on the host's loopback and on the Docker bridge address (only this
    machine's addresses)."""
    import socket
    import subprocess

    bridge = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True,
                            text=True).stdout.split()
    address = next((p.split("/")[0] for p in bridge if p.count(".") == 3 and "/" in p), "172.17.0.1")
    servers = []
    port = None
    for host in ("127.0.0.1", address):
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port or 0))
        port = server.getsockname()[1]
        server.listen()
        servers.append(server)
    yield address, port
    for server in servers:
        server.close()


def test_stopping_the_deployment_removes_its_containers_and_only_its(manager, session):
    from workers.sandbox.manager import SandboxConfig, SandboxManager

    config = SandboxConfig(image=manager.config.image, warm_pool_size=1, memory="256m",
                           namespace=f"leaving-{uuid.uuid4().hex[:8]}")
    leaving = SandboxManager(config, manager.redis)
    leaving.fill_pool()
    leaving.execute("leaving-session", "1")  # takes the pooled container; the pool refills
    deadline = time.monotonic() + 30
    while leaving.redis.scard(config.pool_key) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    manager.execute(session, "x = 1")
    assert leaving.remove_everything() == 2
    assert not leaving.has_session("leaving-session")
    assert not leaving.redis.exists(config.pool_key)
    import docker

    assert not docker.from_env().containers.list(all=True, filters={"label": f"assistants.sandbox={config.namespace}"})
    assert manager.execute(session, "print(x)").stdout == "1\n"  # another deployment's session lives on


def test_a_fresh_session_answers_cleanly_while_libraries_still_load(manager):
    """The runner imports matplotlib in the background as it starts; an execution racing that
    import must neither wait for it nor report a half-imported pyplot."""
    for _ in range(3):
        name = f"fresh-{uuid.uuid4().hex[:8]}"
        try:
            result = manager.execute(name, "print(6 * 7)")
            assert (result.stdout, result.stderr, result.error) == ("42\n", "", None)
        finally:
            manager.close_session(name)
