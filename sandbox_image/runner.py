"""The Code Interpreter kernel: one long-lived Python process per sandbox container, keeping a
single namespace across executions, like a notebook.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
  request: {"id": str, "code": str, "timeout": float}
  reply:   {"id", "stdout", "stderr", "error": null | {"name", "value", "traceback"},
            "images": [base64 PNG, ...], "files": [{"path", "size"}], "duration_ms"}
  {"id": ..., "op": "ping"} answers {"id", "pong": true}.
The kernel's own stdout is the protocol channel; user output is captured per execution.
"""

import ast
import base64
import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
import traceback

DATA_DIR = "/mnt/data"
OUTPUT_LIMIT = 1_000_000
PROTOCOL = sys.stdout
namespace = {"__name__": "__main__"}


class ExecutionTimeout(BaseException):
    """Raised inside user code when its wall-clock limit passes; BaseException so a bare
    `except Exception` in user code does not swallow it."""


def _on_alarm(signum, frame):
    raise ExecutionTimeout()


def _preload():
    # Import the heavy libraries in the background so the first execution is already fast.
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import numpy  # noqa: F401
        import pandas  # noqa: F401
    except Exception:  # noqa: BLE001 (a missing library only matters if user code needs it)
        pass


def _snapshot():
    seen = {}
    for root, _dirs, names in os.walk(DATA_DIR):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            seen[path] = (stat.st_size, stat.st_mtime_ns)
    return seen


def _figures():
    plt = sys.modules.get("matplotlib.pyplot")
    # The background preload may still be importing pyplot. User code that plotted would have
    # waited for that import to finish, so a module still initialising means no figures.
    if plt is None or getattr(getattr(plt, "__spec__", None), "_initializing", False):
        return []
    images = []
    for number in plt.get_fignums():
        buffer = io.BytesIO()
        plt.figure(number).savefig(buffer, format="png", bbox_inches="tight")
        images.append(base64.b64encode(buffer.getvalue()).decode())
    plt.close("all")
    return images


def _capped(text):
    if len(text) > OUTPUT_LIMIT:
        return text[:OUTPUT_LIMIT] + f"\n[output truncated: {len(text) - OUTPUT_LIMIT} more characters]"
    return text


def _run(code):
    tree = ast.parse(code, filename="<code>", mode="exec")
    last_expression = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last_expression = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<code>", "exec"), namespace)
    if last_expression is not None:
        value = eval(compile(last_expression, "<code>", "eval"), namespace)
        if value is not None:
            print(repr(value))


def _stop_leftover_processes():
    """Anything the code forked dies with the execution (a fork bomb included). The kernel is
    PID 1, which kill(-1) spares; then reap the zombies so they free their pids."""
    if os.getpid() != 1:
        return
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGKILL)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def execute(request):
    started = time.monotonic()
    before = _snapshot()
    stdout, stderr = io.StringIO(), io.StringIO()
    error = None
    timeout = float(request.get("timeout") or 30)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            _run(request["code"])
    except ExecutionTimeout:
        error = {"name": "TimeoutError", "value": f"Execution exceeded the {timeout:g} s limit and was interrupted.",
                 "traceback": ""}
    except BaseException as exc:  # noqa: BLE001 (user code errors go back to the model as output)
        error = {"name": type(exc).__name__, "value": str(exc),
                 "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    _stop_leftover_processes()
    try:
        images = _figures()
    except Exception as exc:  # noqa: BLE001 (a broken figure must not lose the execution's output)
        images = []
        stderr.write(f"\n[could not render figures: {exc}]")
    after = _snapshot()
    files = [{"path": path, "size": size} for path, (size, mtime) in sorted(after.items())
             if before.get(path) != (size, mtime)]
    return {"id": request.get("id"), "stdout": _capped(stdout.getvalue()),
            "stderr": _capped(stderr.getvalue()), "error": error, "images": images, "files": files,
            "duration_ms": round((time.monotonic() - started) * 1000, 2)}


def main():
    signal.signal(signal.SIGALRM, _on_alarm)
    os.makedirs(DATA_DIR, exist_ok=True)
    os.chdir(DATA_DIR)
    threading.Thread(target=_preload, daemon=True).start()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError:
            continue
        is_ping = request.get("op") == "ping"
        reply = {"id": request.get("id"), "pong": True} if is_ping else execute(request)
        PROTOCOL.write(json.dumps(reply) + "\n")
        PROTOCOL.flush()


if __name__ == "__main__":
    main()
