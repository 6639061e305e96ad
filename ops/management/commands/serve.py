"""`make run`: everything on one machine, supervised, until Ctrl-C or SIGTERM."""

import signal
import subprocess
import sys
import time
import warnings

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from assistants_project.env import env_int, env_str
from ops.banner import ready_banner, upstream_problem
from ops.embedded_models import ModelsUnavailable
from ops.stack import Stack
from ops.supervisor import GaveUp, Supervisor

CHECK_SECONDS = 0.5


class Command(BaseCommand):
    help = "Start embedded Postgres/Redis (unless configured), migrate, and serve API + workers + beat."

    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        log_dir = settings.DATA_DIR / "logs"
        stack = Stack(
            data_dir=settings.DATA_DIR,
            host=env_str("HOST", "127.0.0.1"),
            port=env_int("PORT", 8000, minimum=1),
            log_dir=log_dir,
            quiet_console=True,
        )
        stopping = False

        def request_stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        # The embedded Postgres falls back to /tmp for its runtime directory: nothing to act on.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        self.stdout.write(f"Starting the Assistants API (logs in {log_dir}/)…")
        failed = None
        try:
            try:
                stack.start_services()
            except ModelsUnavailable as error:
                raise CommandError(str(error)) from error
            try:
                stack.manage("migrate", "--noinput", "-v", "0")
            except subprocess.CalledProcessError as error:
                raise CommandError("migrate failed: see its message above.") from error
            key = stack.ensure_dev_key()
            problem = upstream_problem(stack.env)
            if problem:
                self.stderr.write(f"Warning: {problem}")
            stack.start_all()
            stack.wait_until_serving()
            self.stdout.write(ready_banner(
                env=stack.env, host=stack.host, port=stack.port, key=key,
                key_file=settings.DATA_DIR / "dev-api-key", log_dir=log_dir,
                sandbox_image=settings.SANDBOX_IMAGE))
            sys.stdout.flush()
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
