import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")

app = Celery("assistants")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")


@worker_ready.connect
def warm_up(sender, **kwargs) -> None:
    """Run and ingest workers load the tokenizer and the model client before the first task
    arrives, so the first run after a (re)start does not pay ~1 s for it."""
    import threading

    queues = set(sender.app.amqp.queues.consume_from or {})
    if not queues & {"runs", "ingest"}:
        return

    def load() -> None:
        import openai  # noqa: F401

        from workers.tokenization import get_encoding

        get_encoding("o200k_base")

    threading.Thread(target=load, name="warm-up", daemon=True).start()


@before_task_publish.connect
def carry_request_id(headers=None, **kwargs) -> None:
    """A task enqueued by a request logs under that request's id."""
    from apps.core import log_context

    request_id = log_context.current().get("request_id")
    if headers is not None and request_id:
        headers.setdefault("request_id", request_id)


@task_prerun.connect
def bind_task_context(task=None, args=None, kwargs=None, **extra) -> None:
    from apps.core import log_context

    log_context.clear()
    request_id = getattr(task.request, "request_id", None) if task is not None else None
    log_context.bind(request_id=request_id, **log_context.ids_in(list(args or ()) + list((kwargs or {}).values())))


@task_postrun.connect
def clear_task_context(**kwargs) -> None:
    from apps.core import log_context

    log_context.clear()
