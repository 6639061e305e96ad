"""On a machine without Docker the suite runs and only the tests that need it skip, saying
why; where TESTS_REQUIRE_DOCKER is set (CI) those tests fail instead of skipping."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# Tests of both kinds (marked one by one and by module) that start no stack when they skip or
# fail at once: each run takes seconds.
SELECTION = ["tests/sandbox/test_backend.py::test_only_the_docker_backend_talks_to_docker",
             "tests/sandbox/test_backend.py::test_a_backend_is_named_by_the_setting_or_a_dotted_path",
             "tests/test_code_interpreter.py::test_the_math_tutor_solves_an_equation_by_running_code",
             "tests/unit/test_partial_json.py"]


def _pytest(**env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TESTS_WITHOUT_DOCKER": "1", **env}
    if "TESTS_REQUIRE_DOCKER" not in env:
        environment.pop("TESTS_REQUIRE_DOCKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", *SELECTION], cwd=BASE_DIR, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_without_docker_the_docker_tests_skip_with_the_reason_and_the_rest_pass():
    result = _pytest()
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 2, skipped
    assert all("needs Docker: TESTS_WITHOUT_DOCKER is set" in line for line in skipped), skipped
    assert {re.search(r"tests/\S+?\.py", line).group(0) for line in skipped} == {
        "tests/sandbox/test_backend.py", "tests/test_code_interpreter.py"}, skipped
    assert "5 passed, 2 skipped" in result.stdout, result.stdout


def test_where_docker_is_required_its_absence_fails_the_docker_tests():
    result = _pytest(TESTS_REQUIRE_DOCKER="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("Docker is required (TESTS_REQUIRE_DOCKER is set) but missing") >= 2, result.stdout
    assert "5 passed, 2 errors" in result.stdout, result.stdout


def test_ci_requires_docker():
    assert "export TESTS_REQUIRE_DOCKER=1" in (BASE_DIR / ".ci" / "run").read_text()
