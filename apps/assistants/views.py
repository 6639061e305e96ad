from rest_framework.response import Response

from apps.assistants import services
from apps.assistants.models import Assistant
from apps.assistants.serializers import render_assistant
from apps.core.views import ApiView


class AssistantListView(ApiView):
    requires_beta = True

    def get(self, request):
        queryset = Assistant.objects.filter(project=self.project)
        return Response(self.page(queryset, render_assistant))

    def post(self, request):
        return Response(render_assistant(services.create_assistant(self.project, self.body())))


class AssistantDetailView(ApiView):
    requires_beta = True

    def get(self, request, assistant_id: str):
        return Response(render_assistant(services.get_assistant(self.project, assistant_id)))

    def post(self, request, assistant_id: str):
        assistant = services.modify_assistant(self.project, assistant_id, self.body())
        return Response(render_assistant(assistant))

    def delete(self, request, assistant_id: str):
        deleted_id = services.delete_assistant(self.project, assistant_id)
        return Response({"id": deleted_id, "object": "assistant.deleted", "deleted": True})
