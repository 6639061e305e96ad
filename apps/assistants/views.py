from rest_framework.response import Response

from apps.assistants import services
from apps.assistants.models import Assistant
from apps.assistants.rendering import render_assistant
from apps.core.fields import given
from apps.core.views import ApiView

_FIELDS = (*services.FIELDS, "tool_resources")


class AssistantListView(ApiView):
    requires_beta = True

    def get(self, request):
        queryset = Assistant.objects.restrict(self.project)
        return Response(self.page(queryset, render_assistant))

    def post(self, request):
        body = self.validated("CreateAssistantRequest")
        assistant = services.create_assistant(self.project, **given(body, _FIELDS))
        return Response(render_assistant(assistant))


class AssistantDetailView(ApiView):
    requires_beta = True

    def get(self, request, assistant_id: str):
        return Response(render_assistant(services.get_assistant(self.project, assistant_id)))

    def post(self, request, assistant_id: str):
        body = self.validated("ModifyAssistantRequest")
        assistant = services.modify_assistant(self.project, assistant_id, **given(body, _FIELDS))
        return Response(render_assistant(assistant))

    def delete(self, request, assistant_id: str):
        deleted_id = services.delete_assistant(self.project, assistant_id)
        return Response({"id": deleted_id, "object": "assistant.deleted", "deleted": True})
