"""`make run`: everything on one machine, supervised, until Ctrl-C or SIGTERM."""

import signal
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from assistants_project.env import env_int, env_str
from assistants_project.stack import Stack
from assistants_project.supervisor import GaveUp, Supervisor

CHECK_SECONDS = 0.5


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
        failed = None
        try:
            stack.start_services()
            stack.manage("migrate", "--noinput", "-v", "0")
            key = stack.ensure_dev_key()
            stack.start_all()
            stack.wait_until_serving()
            self.stdout.write(
                f"\nAssistants API serving at http://{stack.host}:{stack.port}/v1\n"
                f"Dev API key (also in {settings.DATA_DIR / 'dev-api-key'}):\n{key}\n"
                "Press Ctrl-C to stop.\n"
            )
            # A child that dies is restarted; only Ctrl-C or SIGTERM ends the stack, or a
            # child that keeps dying.
            supervisor = Supervisor(stack.units, say=lambda line: self.stderr.write(line))
            while not stopping:
                supervisor.check()
                time.sleep(CHECK_SECONDS)
        except GaveUp as gave_up:
            failed = gave_up
            self.stderr.write(f"supervisor: {gave_up}; stopping the stack. Its last log lines:")
            for line in gave_up.tail:
                self.stderr.write(f"  {gave_up.name} | {line}")
        finally:
            self.stdout.write("Stopping…")
            stack.stop()
        if failed is not None:
            sys.exit(1)
