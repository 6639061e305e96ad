from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Remove every Code Interpreter container of this deployment (sessions included)."

    def handle(self, *args, **options) -> None:
        try:
            from workers.sandbox.service import get_manager

            removed = get_manager().remove_everything()
        except Exception as exc:  # noqa: BLE001 (no Docker here: nothing of ours to remove)
            self.stderr.write(f"sandbox containers not removed: {exc}")
            return
        self.stdout.write(f"removed {removed} sandbox container(s)")
