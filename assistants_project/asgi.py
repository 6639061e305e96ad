import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")
django.setup(set_prefix=False)

from apps.core.request_threads import RequestThreads, SyncChainHandler  # noqa: E402

# The middleware chain and view run in one hop to a reused thread (apps/core/request_threads.py).
application = RequestThreads(SyncChainHandler())

# Imported once Django is set up: the edge reads settings and, for /v1 bodies, API keys.
from apps.core.edge import BodyLimitGuard  # noqa: E402

# The edge bounds request bodies while they stream in, before Django reads them.
application = BodyLimitGuard(application)

from apps.core import tracing  # noqa: E402

application = tracing.wrap_asgi(application)

from apps.core.shutdown import Lifespan  # noqa: E402

# SIGTERM: open streams drain for WEB_DRAIN_SECONDS, then end with `done`.
application = Lifespan(application)

from assistants_project.heap import settle_after_start_up  # noqa: E402

settle_after_start_up()
