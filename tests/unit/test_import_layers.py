"""The import floors, read from the source (ast), function-local imports included: the apps'
services never import each other in a circle, and apps reach Celery only through
apps/core/queue.py."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "apps"
QUEUE_MODULE = "apps.core.queue"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(under: Path) -> dict[str, Path]:
    return {_module_name(path): path for path in under.rglob("*.py") if "migrations" not in path.parts}


def _imported(path: Path, known: set[str]) -> set[str]:
    """Every module `path` imports anywhere in its body; `from package import module` counts
    as importing the module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in known)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules(APPS)
    known = set(modules)
    return {name: _imported(path, known) & known for name, path in modules.items()}


def _cycle_through(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """An import path from `start` back to itself, if there is one."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for imported in sorted(graph.get(module, ())):
            if imported == start:
                return [*path, start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, [*path, imported]))
    return None


def test_the_graph_sees_function_local_imports():
    graph = _graph()
    assert "apps.files.services" in graph["apps.files.deletion"]
    assert "apps.vector_stores.services" in graph["apps.vector_stores.tool_resources"]
    # `from apps.core import metrics` inside a function body is an edge too.
    assert any("apps.core.metrics" in imported for imported in graph.values())


def test_no_services_module_imports_itself_through_others():
    graph = _graph()
    services = sorted(name for name in graph if name.startswith("apps.") and name.endswith(".services"))
    assert len(services) >= 5
    cycles = [" -> ".join(cycle) for name in services if (cycle := _cycle_through(name, graph))]
    assert cycles == []


def test_a_circle_would_be_found():
    graph = {"apps.a.services": {"apps.b.helpers"}, "apps.b.helpers": {"apps.a.services"}}
    assert _cycle_through("apps.a.services", graph) == [
        "apps.a.services", "apps.b.helpers", "apps.a.services"]


def _celery_users(under: Path) -> dict[str, set[str]]:
    """Modules that import the Celery app (`assistants_project.celery`, or the package's
    `celery_app`) or call `send_task`."""
    users = {}
    for name, path in _modules(under).items():
        reached = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                reached.update(alias.name for alias in node.names
                               if alias.name.startswith("assistants_project.celery"))
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("assistants_project.celery"):
                    reached.add(node.module)
                if node.module == "assistants_project":
                    reached.update(f"assistants_project.{alias.name}" for alias in node.names
                                   if alias.name in ("celery", "celery_app"))
            elif isinstance(node, ast.Attribute) and node.attr == "send_task":
                reached.add("send_task")
        if reached:
            users[name] = reached
    return users


def test_apps_reach_celery_only_through_the_enqueue_helper():
    users = _celery_users(APPS)
    assert set(users) == {QUEUE_MODULE}, users


def test_queue_routing_has_one_home():
    from apps.core.queue import ROUTES, queue_for

    settings_text = (ROOT / "assistants_project" / "settings.py").read_text()
    assert "CELERY_TASK_ROUTES" not in settings_text
    assert queue_for("workers.runs.tasks.execute_run") == "runs"
    assert queue_for("workers.ingest.tasks.expire_vector_stores") == "runs"
    assert queue_for("workers.ingest.tasks.ingest_file") == "ingest"
    assert queue_for("workers.sandbox.file_tasks.forget_file") == "sandbox"
    assert {route["queue"] for route in ROUTES.values()} == {"runs", "ingest", "sandbox"}
    for path in (ROOT / "workers").rglob("*.py"):
        assert "queue=" not in path.read_text() or path.name == "manager.py", path


def test_the_celery_app_needs_nothing_of_the_workers():
    imported = _imported(ROOT / "assistants_project" / "celery.py", set())
    assert not {module for module in imported if module.split(".")[0] == "workers"}


def test_services_take_plain_values_not_request_bodies():
    """Views validate a request against the spec; services never do, so no internal caller has
    to build a request dict for them (nor pass `validated=True`)."""
    for path in APPS.glob("*/services.py"):
        tree = ast.parse(path.read_text(), str(path))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    for alias in node.names}
        assert "validate_request" not in imported, path
        parameters = {arg.arg for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                      for arg in node.args.args + node.args.kwonlyargs}
        assert "validated" not in parameters, path


def _imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_ops_package_sits_above_the_apps():
    """The one-machine stack, its embedded servers and `manage.py serve` live in ops/; apps
    never import it (but `reembed`, which starts the embedded Postgres and model server for
    itself when `make run` is stopped)."""
    offenders = {}
    for name, path in _modules(APPS).items():
        reached = {module for module in _imports_of(path) if module.split(".")[0] == "ops"}
        if reached and name != "apps.vector_stores.management.commands.reembed":
            offenders[name] = reached
    assert offenders == {}
    assert not (APPS / "core" / "management" / "commands" / "serve.py").exists()
    for name in ("stack", "embedded", "supervisor", "model_server", "embedded_models"):
        assert not (ROOT / "assistants_project" / f"{name}.py").exists(), name
        assert (ROOT / "ops" / f"{name}.py").exists(), name


def test_no_management_command_in_apps_reaches_into_the_workers():
    for path in APPS.glob("*/management/commands/*.py"):
        assert not {module for module in _imports_of(path) if module.split(".")[0] == "workers"}, path
