"""Every Celery task module, imported so workers and beat know them."""

from workers import signals  # noqa: F401  (worker-side signal handlers)
from workers.files import tasks as file_tasks  # noqa: F401
from workers.ingest import tasks as ingest_tasks  # noqa: F401
from workers.runs import tasks as run_tasks  # noqa: F401
from workers.sandbox import file_tasks as sandbox_file_tasks  # noqa: F401
from workers.sandbox import tasks as sandbox_tasks  # noqa: F401
