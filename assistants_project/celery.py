import os

from celery import Celery
from celery.signals import worker_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")

app = Celery("assistants")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")


@worker_init.connect
def check_capacity(sender, **kwargs) -> None:
    """A worker whose concurrency does not fit its database pool refuses to start. (Celery
    logs and carries on after a signal handler's exception, so this one exits instead.)"""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from assistants_project.capacity import check_worker_capacity, pool_name

    try:
        check_worker_capacity(pool_name(sender.pool_cls), int(sender.concurrency or 1),
                              settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"])
    except ImproperlyConfigured as error:
        raise SystemExit(f"ImproperlyConfigured: {error}") from error


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
