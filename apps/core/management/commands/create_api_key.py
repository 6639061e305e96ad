from django.core.management.base import BaseCommand

from apps.core.services import issue_api_key


class Command(BaseCommand):
    help = "Create a project if needed and print a new API key for it (the last line of output)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, project: str, name: str, **options) -> None:
        api_key, raw = issue_api_key(project, name)
        self.stdout.write(f"Project {api_key.project.name} ({api_key.project.pk}), key {api_key.pk}:")
        self.stdout.write(raw)
