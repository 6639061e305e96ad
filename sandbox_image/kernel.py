"""The Python kernel of a sandbox: started by runner.py, it runs user code in one namespace
kept across executions. Its stdout and stderr are the user's output (the runner reads them);
it gets code on the KERNEL_CMD_FD pipe and answers on KERNEL_RESULT_FD with one line,
{"error": null | {...}}, after saving the figures the code drew into the directory it was given.
User code can reach both pipes: the runner trusts nothing it reads there but a short error."""

import ast
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback

namespace = {"__name__": "__main__"}
# Built into the image (Dockerfile): copied to the writable MPLCONFIGDIR so that a new sandbox
# does not spend seconds building matplotlib's font cache.
FONT_CACHE = "/opt/sandbox/matplotlib"


class ExecutionTimeout(BaseException):
    """Raised inside user code when its wall-clock limit passes; BaseException so a bare
    `except Exception` in user code does not swallow it."""


def _on_alarm(signum, frame):
    raise ExecutionTimeout()


PRELOADED = threading.Event()


def _needs_libraries(tree):
    """Code importing anything outside the standard library waits for the background imports:
    numpy, pandas and matplotlib imported from two threads at once can deadlock, and any
    third-party library may import them. Code that imports nothing else runs at once."""
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        if any(name.split(".")[0] not in sys.stdlib_module_names for name in names):
            return True
    return False


def _preload():
    # Import the heavy libraries in the background so the first execution is already fast.
    # Their start-up chatter (matplotlib's font cache notice) is not the user's output.
    chatter = logging.getLogger("matplotlib")
    chatter.setLevel(logging.ERROR)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import numpy  # noqa: F401
        import pandas  # noqa: F401
    except Exception:  # noqa: BLE001 (a missing library only matters if user code needs it)
        pass
    finally:
        chatter.setLevel(logging.NOTSET)
        PRELOADED.set()


def _save_figures(directory):
    plt = sys.modules.get("matplotlib.pyplot")
    # The background preload may still be importing pyplot. User code that plotted would have
    # waited for that import to finish, so a module still initialising means no figures.
    if plt is None or getattr(getattr(plt, "__spec__", None), "_initializing", False):
        return
    for index, number in enumerate(plt.get_fignums()):
        plt.figure(number).savefig(os.path.join(directory, f"{index:04d}.png"), format="png",
                                   bbox_inches="tight")
    plt.close("all")


def _run(code, timeout):
    tree = ast.parse(code, filename="<code>", mode="exec")
    if _needs_libraries(tree):
        PRELOADED.wait(timeout)
    last_expression = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last_expression = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<code>", "exec"), namespace)
    if last_expression is not None:
        value = eval(compile(last_expression, "<code>", "eval"), namespace)
        if value is not None:
            print(repr(value))


def _stop_leftover_processes():
    """Anything the code forked dies with the execution (a fork bomb included): kill(-1)
    spares only the caller and PID 1 (the runner). Then reap the zombies so they free pids."""
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
    error = None
    timeout = float(request.get("timeout") or 30)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        _run(request["code"], timeout)
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
        _save_figures(request["figures"])
    except Exception as exc:  # noqa: BLE001 (a broken figure must not lose the execution's output)
        sys.stderr.write(f"\n[could not render figures: {exc}]")
    sys.stdout.flush()
    sys.stderr.flush()
    return {"error": error}


def main():
    signal.signal(signal.SIGALRM, _on_alarm)
    commands = os.fdopen(int(os.environ.pop("KERNEL_CMD_FD")), "r")
    results = int(os.environ.pop("KERNEL_RESULT_FD"))
    config_dir = os.environ.get("MPLCONFIGDIR", "/tmp/matplotlib")
    if os.path.isdir(FONT_CACHE) and not os.path.exists(config_dir):
        with contextlib.suppress(OSError):
            shutil.copytree(FONT_CACHE, config_dir)
    threading.Thread(target=_preload, daemon=True).start()
    for line in commands:
        if not line.strip():
            continue
        reply = execute(json.loads(line))
        if reply["error"]:
            reply["error"] = {key: str(value)[-50_000:] for key, value in reply["error"].items()}
        data = memoryview((json.dumps(reply) + "\n").encode())
        while data:
            data = data[os.write(results, data):]


if __name__ == "__main__":
    main()
