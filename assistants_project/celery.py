import logging
import os

if os.environ.get("LOG_FILE"):
    # `make run`: Python warnings at start-up (Celery's "running as root") go to this child's
    # log file, not the terminal; they come before Celery sets up logging.
    logging.captureWarnings(True)
    _warnings_log = logging.getLogger("py.warnings")
    _warnings_log.addHandler(logging.FileHandler(os.environ["LOG_FILE"]))
    _warnings_log.propagate = False

from celery import Celery  # noqa: E402
from celery.signals import (  # noqa: E402
    beat_init,
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
)

from apps.core import broker_transport  # noqa: E402
from apps.core.queue import ROUTES  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")

broker_transport.install()
app = Celery("assistants")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = ROUTES  # beat's periodic tasks; apps send through apps.core.queue
app.autodiscover_tasks(["workers"], related_name="tasks")


@setup_logging.connect
def use_django_logging(**kwargs) -> None:
    """Workers and beat log through settings.LOGGING (a file and a quieter terminal under
    `make run`) instead of Celery's own handlers."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)


@worker_init.connect
def check_capacity(sender, **kwargs) -> None:
    """A worker whose concurrency does not fit its database pool refuses to start. (Celery
    logs and carries on after a signal handler's exception, so this one exits instead.)"""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from assistants_project.capacity import check_worker_capacity, pool_name

    try:
        queues = frozenset(sender.app.amqp.queues.consume_from or ())
        check_worker_capacity(pool_name(sender.pool_cls), int(sender.concurrency or 1),
                              settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"], queues)
    except ImproperlyConfigured as error:
        raise SystemExit(f"ImproperlyConfigured: {error}") from error


@before_task_publish.connect
def carry_request_id(headers=None, **kwargs) -> None:
    """A task enqueued by a request logs under that request's id."""
    from apps.core import log_context, tracing

    request_id = log_context.current().get("request_id")
    if headers is not None and request_id:
        headers.setdefault("request_id", request_id)
    if headers is not None:
        tracing.inject(headers)


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


@worker_init.connect
def serve_worker_metrics(**kwargs) -> None:
    """Each worker serves its machine's (container's) samples on METRICS_PORT."""
    from apps.core import metrics, tracing

    metrics.serve_worker_metrics("worker")
    tracing.start("worker")
    from assistants_project.heap import settle_after_start_up

    settle_after_start_up()


@beat_init.connect
def serve_beat_metrics(**kwargs) -> None:
    from apps.core import metrics

    metrics.serve_worker_metrics("beat")


@task_prerun.connect
def note_ingest_start(task_id=None, task=None, args=None, **kwargs) -> None:
    if task is not None and task.name == "workers.ingest.tasks.ingest_file" and args:
        from apps.core import metrics

        metrics.ingest_task_started(task_id, args[0])


@task_postrun.connect
def count_ingest_end(task_id=None, task=None, **kwargs) -> None:
    if task is not None and task.name == "workers.ingest.tasks.ingest_file":
        from apps.core import metrics

        metrics.ingest_task_ended(task_id)
