import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistants_project.settings")

app = Celery("assistants")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")
