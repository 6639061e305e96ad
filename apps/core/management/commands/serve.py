"""`make run`: everything on one machine until Ctrl-C."""

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from assistants_project.env import env_int, env_str
from assistants_project.stack import Stack


class Command(BaseCommand):
    help = "Start embedded Postgres/Redis (unless configured), migrate, and serve API + workers + beat."

    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        stack = Stack(
            data_dir=settings.DATA_DIR,
            host=env_str("HOST", "127.0.0.1"),
            port=env_int("PORT", 8000, minimum=1),
        )
        stopping = False

        def request_stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            stack.start_services()
            stack.manage("migrate", "--noinput", "-v", "0")
            key = stack.ensure_dev_key()
            stack.start_all()
            stack.wait_until_serving()
            self.stdout.write(
                f"\nAssistants API serving at http://{stack.host}:{stack.port}/v1\n"
                f"Dev API key (also in {settings.DATA_DIR / 'dev-api-key'}):\n{key}\n"
                f"Playground: http://{stack.host}:{stack.port}/playground/ (sign in with the key above)\n"
                "Press Ctrl-C to stop.\n"
            )
            while not stopping:
                for name, process in list(stack.children.items()):
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping.")
                        stopping = True
                time.sleep(0.5)
        finally:
            self.stdout.write("Stopping…")
            stack.stop()
