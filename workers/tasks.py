"""Every Celery task module, imported so workers and beat know them."""

from workers.runs import tasks as run_tasks  # noqa: F401
