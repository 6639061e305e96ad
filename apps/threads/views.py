from rest_framework.response import Response

from apps.core.fields import given
from apps.core.views import ApiView
from apps.threads import services
from apps.threads.rendering import render_message, render_thread

THREAD_FIELDS = ("messages", "metadata", "tool_resources")


class ThreadCreateView(ApiView):
    requires_beta = True

    def get(self, request):
        """`GET /v1/threads`, an extension of OpenAI's API (which cannot list threads): the
        project's threads, newest first, paged like every list, with `search`."""
        queryset = services.list_threads(self.project, request.query_params.get("search"))
        return Response(self.page(queryset, render_thread))

    def post(self, request):
        body = self.validated("CreateThreadRequest")
        thread = services.create_thread(self.project, **given(body, THREAD_FIELDS))
        return Response(render_thread(thread))


class ThreadDetailView(ApiView):
    requires_beta = True

    def get(self, request, thread_id: str):
        return Response(render_thread(services.get_thread(self.project, thread_id)))

    def post(self, request, thread_id: str):
        body = self.validated("ModifyThreadRequest")
        thread = services.modify_thread(self.project, thread_id,
                                        **given(body, ("metadata", "tool_resources")))
        return Response(render_thread(thread))

    def delete(self, request, thread_id: str):
        deleted_id = services.delete_thread(self.project, thread_id)
        return Response({"id": deleted_id, "object": "thread.deleted", "deleted": True})


class MessageListView(ApiView):
    requires_beta = True

    def get(self, request, thread_id: str):
        queryset = services.list_messages(
            self.project, thread_id, request.query_params.get("run_id")
        )
        return Response(self.page(queryset, render_message))

    def post(self, request, thread_id: str):
        body = self.validated("CreateMessageRequest")
        message = services.create_message(self.project, thread_id,
                                          **given(body, services.MESSAGE_FIELDS))
        return Response(render_message(message))


class MessageDetailView(ApiView):
    requires_beta = True

    def get(self, request, thread_id: str, message_id: str):
        return Response(render_message(services.get_message(self.project, thread_id, message_id)))

    def post(self, request, thread_id: str, message_id: str):
        body = self.validated("ModifyMessageRequest")
        message = services.modify_message(self.project, thread_id, message_id,
                                          **given(body, ("metadata",)))
        return Response(render_message(message))

    def delete(self, request, thread_id: str, message_id: str):
        deleted_id = services.delete_message(self.project, thread_id, message_id)
        return Response({"id": deleted_id, "object": "thread.message.deleted", "deleted": True})
