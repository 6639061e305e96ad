from rest_framework.response import Response

from apps.core.fields import given
from apps.core.views import ApiView
from apps.runs import services
from apps.runs.rendering import render_run, render_step
from apps.runs.streaming import sse_response


def _include(request) -> list[str]:
    return request.query_params.getlist("include[]") or request.query_params.getlist("include")


class ThreadAndRunView(ApiView):
    requires_beta = True

    def post(self, request):
        body = self.validated("CreateThreadAndRunRequest")
        run = services.create_thread_and_run(self.project, **given(body, (
            *services.RUN_FIELDS, "assistant_id", "thread", "tool_resources")))
        if body.get("stream"):
            return sse_response(run.pk)
        return Response(render_run(run))


class RunListView(ApiView):
    requires_beta = True

    def get(self, request, thread_id: str):
        queryset = services.list_runs(self.project, thread_id)
        return Response(self.page(queryset, render_run))

    def post(self, request, thread_id: str):
        body = self.validated("CreateRunRequest")
        run = services.create_run(self.project, thread_id, include=_include(request), **given(body, (
            *services.RUN_FIELDS, "assistant_id", "additional_messages")))
        if body.get("stream"):
            return sse_response(run.pk)
        return Response(render_run(run))


class RunDetailView(ApiView):
    requires_beta = True

    def get(self, request, thread_id: str, run_id: str):
        run = services.get_run(self.project, thread_id, run_id)
        return Response(render_run(run), headers=self.poll_headers())

    def post(self, request, thread_id: str, run_id: str):
        body = self.validated("ModifyRunRequest")
        run = services.modify_run(self.project, thread_id, run_id, **given(body, ("metadata",)))
        return Response(render_run(run))


class RunCancelView(ApiView):
    requires_beta = True

    def post(self, request, thread_id: str, run_id: str):
        return Response(render_run(services.cancel_run(self.project, thread_id, run_id)))


class SubmitToolOutputsView(ApiView):
    requires_beta = True

    def post(self, request, thread_id: str, run_id: str):
        body = self.validated("SubmitToolOutputsRunRequest")
        run, start_id = services.submit_tool_outputs(self.project, thread_id, run_id,
                                                     body["tool_outputs"])
        if body.get("stream"):
            return sse_response(run.pk, start_id)
        return Response(render_run(run))


class RunStepListView(ApiView):
    requires_beta = True

    def get(self, request, thread_id: str, run_id: str):
        include = services.step_include(_include(request))
        queryset = services.list_steps(self.project, thread_id, run_id)
        return Response(self.page(queryset,
                                 lambda step: render_step(step, include)))


class RunStepDetailView(ApiView):
    requires_beta = True

    def get(self, request, thread_id: str, run_id: str, step_id: str):
        include = services.step_include(_include(request))
        step = services.get_step(self.project, thread_id, run_id, step_id)
        return Response(render_step(step, include))
