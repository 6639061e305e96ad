"""The hosted-tool registry: each kind maps through its own tool object, never by default to
another, and a deployment's own tools are configured strictly."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from workers.runs import hosted
from workers.runs.tools import upstream_tool_choice


@pytest.fixture
def fresh_registry():
    hosted.registered.cache_clear()
    yield
    hosted.registered.cache_clear()


def test_the_built_in_tools_are_registered_in_one_list(fresh_registry):
    assert list(hosted.registered()) == ["file_search", "code_interpreter"]


def test_a_named_tool_choice_maps_through_its_own_tool(fresh_registry):
    assert upstream_tool_choice({"type": "code_interpreter"}) == {
        "type": "function", "function": {"name": "python"}}
    assert upstream_tool_choice({"type": "file_search"}) == {
        "type": "function", "function": {"name": "file_search"}}
    assert upstream_tool_choice({"type": "function", "function": {"name": "lookup"}}) == {
        "type": "function", "function": {"name": "lookup"}}


def test_a_kind_the_server_does_not_have_is_never_forced_as_file_search(fresh_registry):
    assert upstream_tool_choice({"type": "web_search"}) == "auto"


def test_a_configured_class_must_have_the_kind_it_is_configured_for(fresh_registry):
    with override_settings(HOSTED_TOOLS_EXTRA={"reverse": "workers.retrieval.tool.FileSearch"}), \
            pytest.raises(ImproperlyConfigured, match="its kind is 'file_search'"):
        hosted.registered()


def test_a_configured_class_must_be_a_hosted_tool(fresh_registry):
    with override_settings(HOSTED_TOOLS_EXTRA={"reverse": "workers.runs.hosted.HostedResult"}), \
            pytest.raises(ImproperlyConfigured, match="is not a HostedTool"):
        hosted.registered()


@pytest.mark.parametrize("value", ["reverse", "Reverse=a.B", "file_search=a.B", "reverse=nodots"])
def test_a_malformed_setting_is_refused(monkeypatch, value):
    from assistants_project.settings import _hosted_tools_extra

    monkeypatch.setenv("HOSTED_TOOLS_EXTRA", value)
    with pytest.raises(ImproperlyConfigured, match="HOSTED_TOOLS_EXTRA"):
        _hosted_tools_extra()


def test_the_setting_names_kinds_and_classes(monkeypatch):
    from assistants_project.settings import _hosted_tools_extra

    monkeypatch.setenv("HOSTED_TOOLS_EXTRA", "reverse=tests.test_hosted_tools.ReverseTool, dice=pkg.mod.Dice")
    assert _hosted_tools_extra() == {"reverse": "tests.test_hosted_tools.ReverseTool", "dice": "pkg.mod.Dice"}
