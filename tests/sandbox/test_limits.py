"""What one execution can make the host do is bounded: user code cannot reach the protocol,
output is capped and truncated head-and-tail, files move in chunks, sessions are capped."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest

pytestmark = pytest.mark.docker  # every test here runs code in a sandbox


def test_user_code_cannot_forge_a_reply(manager, session):
    forged = ('{"id": "x", "stdout": "forged", "files": ['
              + ", ".join(['{"path": "/mnt/data/x", "size": 1}'] * 10_000) + "]}")
    result = manager.execute(session, (
        "import sys, os\n"
        f"sys.__stdout__.write({forged!r} + '\\n'); sys.__stdout__.flush()\n"
        f"os.write(1, {forged[:60]!r}.encode() + b'\\n')\n"
        "for fd in (0, 1):\n"
        "    try:\n"
        "        open(f'/proc/1/fd/{fd}', 'w').write('{}\\n'); print('reached', fd)\n"
        "    except OSError as e:\n"
        "        print('denied', fd)\n"))
    assert result.error is None
    assert result.files == []
    assert "denied 0\ndenied 1\n" in result.stdout
    assert result.stdout.startswith('{"id": "x", "stdout": "forged"')  # just output


def test_logs_keep_head_and_tail_with_the_cut_marked(manager, session):
    result = manager.execute(session, "print('HEAD' + 'x' * 3_000_000 + 'TAIL')")
    limit = manager.config.output_limit
    assert result.stdout.startswith("HEAD") and result.stdout.rstrip().endswith("TAIL")
    assert "bytes of output cut ...]" in result.stdout
    assert len(result.stdout) < limit + 100


def test_files_returned_by_one_execution_are_capped_in_count_and_bytes(manager, session):
    result = manager.execute(session, "for i in range(50): open(f'/mnt/data/f{i:02d}.txt', 'w').write('a')")
    assert len(result.files) == manager.config.max_output_files
    assert "[30 more files not returned" in result.stderr
    saved = manager.config.max_output_bytes
    manager.config.max_output_bytes = 1 << 20
    try:
        result = manager.execute(session, "for i in range(3): open(f'/mnt/data/big{i}', 'wb').write(b'0' * 600_000)")
    finally:
        manager.config.max_output_bytes = saved
    assert [f["path"] for f in result.files] == ["/mnt/data/big0"]
    assert "[2 more files not returned" in result.stderr


def test_files_move_in_chunks_and_one_too_big_leaves_the_session_intact(manager, session):
    data = bytes(range(256)) * (40 * 4096)  # 40 MiB: 40 transfer chunks
    manager.execute(session, "kept = 'state'")
    manager.put_file(session, "in.bin", io.BytesIO(data))
    digest = manager.execute(session, "import hashlib; print(hashlib.sha256(open('/mnt/data/in.bin','rb').read()).hexdigest())")
    assert digest.stdout.strip() == hashlib.sha256(data).hexdigest()
    assert manager.get_file(session, "/mnt/data/in.bin") == data
    with pytest.raises(RuntimeError, match="No space left on device"):
        manager.put_file(session, "huge.bin", io.BytesIO(b"\0" * (80 << 20)))  # /mnt/data is 64 MiB
    after = manager.execute(session, "import os; print(kept, os.path.exists('/mnt/data/huge.bin'))")
    assert after.stdout == "state False\n"


def test_a_deleted_file_leaves_the_sandboxes_holding_it(manager, session):
    file_id = f"file-{uuid.uuid4().hex[:12]}"
    manager.put_file(session, "secret.csv", b"a,b\n", file_id=file_id)
    assert manager.execute(session, "import os; print(os.path.exists('/mnt/data/secret.csv'))").stdout == "True\n"
    assert manager.forget_file(file_id) == [session]
    assert manager.execute(session, "import os; print(os.path.exists('/mnt/data/secret.csv'))").stdout == "False\n"


def test_live_sessions_are_capped_and_the_oldest_idle_is_evicted(manager):
    project = f"proj-{uuid.uuid4().hex[:8]}"
    names = [f"cap-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    saved = manager.config.max_sessions_per_project
    manager.config.max_sessions_per_project = 2
    try:
        manager.execute(names[0], "1", project=project)
        manager.execute(names[1], "1", project=project)
        manager.execute(names[0], "1", project=project)  # names[1] is now the least recent
        manager.execute(names[2], "1", project=project)
        assert [manager.has_session(n) for n in names] == [True, False, True]
        # A session running code is never evicted: with both busy, a new one is refused.
        with manager.admission.busy(names[0], 30), manager.admission.busy(names[2], 30):
            refused = manager.execute(names[1], "1", project=project)
        assert refused.error["name"] == "SandboxBusy"
        assert "2 sandbox sessions per project" in refused.error["value"]
    finally:
        manager.config.max_sessions_per_project = saved
        for name in names:
            manager.close_session(name)


def test_a_kernel_killed_by_memory_restarts_without_losing_the_container(manager, session):
    container = manager.sandbox_id(session)
    result = manager.execute(session, "hog = bytearray(1024 ** 3)\nhog[::4096] = b'x' * len(hog[::4096])")
    assert result.error is not None
    assert manager.execute(session, "print('after')").stdout == "after\n"
    assert manager.sandbox_id(session) == container


def test_a_fresh_sandbox_plots_at_once_while_its_libraries_still_load(manager):
    """The kernel imports numpy, pandas and matplotlib in the background as it starts; code
    importing them right away waits for that instead of importing alongside it (which stalled
    a fresh sandbox past its time limit)."""
    name = f"fresh-plot-{uuid.uuid4().hex[:8]}"
    try:
        result = manager.execute(name, (
            "import pandas as pd\nimport matplotlib.pyplot as plt\n"
            "pd.DataFrame({'a': [1, 3, 2]}).plot()\nprint('plotted')"), timeout=60)
        assert (result.stdout, result.error) == ("plotted\n", None)
        assert len(result.images) == 1 and result.images[0].startswith(b"\x89PNG")
    finally:
        manager.close_session(name)
