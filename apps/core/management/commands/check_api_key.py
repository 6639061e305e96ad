from django.core.management.base import BaseCommand

from apps.core.models import ApiKey, hash_api_key


class Command(BaseCommand):
    help = "Print 'valid' if the given API key exists and is not revoked, else 'invalid'."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key")

    def handle(self, *args, key: str, **options) -> None:
        valid = ApiKey.objects.filter(key_hash=hash_api_key(key), revoked=False).exists()
        self.stdout.write("valid" if valid else "invalid")
