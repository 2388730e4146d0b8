"""The cluster deployment files are checked with the real tools: ``helm lint`` and
``helm template`` on the chart, every rendered object against the Kubernetes schema
(kubernetes-validate, strict), the compose file against the compose-spec schema
(check-jsonschema's copy), and the device's systemd unit with ``systemd-analyze verify``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"
CHART = DEPLOY / "helm" / "fleetlink"
K8S_VERSION = "1.30.0"
SECRETS = [
    "--set",
    "secrets.databasePassword=Db-Pw-0123456789,secrets.mqttPassword=Mq-Pw-0123456789,"
    "secrets.fieldKeys=k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
]


def _helm() -> str:
    """Return the helm binary that tests/run.sh installs into the virtualenv (or PATH's)."""
    beside = Path(sys.executable).parent / "helm"
    found = str(beside) if beside.exists() else shutil.which("helm")
    assert found, "helm is missing: tests/run.sh installs it (see docs/scaling.md)"
    return found


def _render(*values: str) -> list[dict]:  # type: ignore[type-arg]
    out = subprocess.run(
        [_helm(), "template", "fl", str(CHART), *SECRETS, *values],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _by_name(docs: list[dict], kind: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_chart_lints_clean() -> None:
    done = subprocess.run(
        [_helm(), "lint", "--strict", str(CHART), *SECRETS], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("broker", ["mqtt", "nats"])
def test_every_rendered_object_is_valid_kubernetes(broker: str) -> None:
    extra = ["--set", f"broker.kind={broker},secrets.devicePassword=Dev-Pw-0123456789"]
    docs = _render(*extra)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_api_and_ingest_scale_apart_with_probes_and_resource_requests() -> None:
    docs = _render("--set", "api.replicas=3,ingest.replicas=5,ingest.workers=4")
    deployments = _by_name(docs, "Deployment")
    api, ingest = deployments["fl-fleetlink-api"], deployments["fl-fleetlink-ingest"]
    assert api["spec"]["replicas"] == 3 and ingest["spec"]["replicas"] == 5
    for deployment, workers in ((api, "0"), (ingest, "4")):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FLEETLINK_INGEST_WORKERS"] == workers
        assert env["FLEETLINK_MODE"] == "production"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_the_probed_paths_exist_in_the_api() -> None:
    from fleetlink.cloud.api.health import healthz, readyz

    assert healthz and readyz
    source = (DEPLOY.parent / "cloud" / "api" / "health.py").read_text()
    assert '"/healthz"' in source and '"/readyz"' in source


def test_the_chart_refuses_to_render_without_passwords() -> None:
    done = subprocess.run([_helm(), "template", "fl", str(CHART)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "secrets.databasePassword" in done.stderr


def test_an_existing_secret_replaces_the_chart_made_one() -> None:
    out = subprocess.run(
        [_helm(), "template", "fl", str(CHART), "--set", "secrets.existingSecret=prod-fl"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert "name: prod-fl" in out


def test_the_nats_mode_points_the_ingest_at_every_node() -> None:
    docs = _render("--set", "broker.kind=nats,secrets.devicePassword=Dev-Pw-0123456789")
    nats = _by_name(docs, "StatefulSet")["fl-fleetlink-nats"]
    assert nats["spec"]["replicas"] == 3
    ingest = _by_name(docs, "Deployment")["fl-fleetlink-ingest"]
    env = {
        e["name"]: e.get("value")
        for e in ingest["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["FLEETLINK_INGEST_SOURCE"] == "nats"
    assert env["FLEETLINK_NATS_URL"].count("nats://") == 3
    conf = _by_name(docs, "ConfigMap")["fl-fleetlink-nats"]["data"]["nats.conf"]
    assert "jetstream" in conf and "mqtt" in conf and conf.count("nats-route://") == 3


def test_the_compose_file_matches_the_compose_spec() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "cloud" / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_api_and_ingest_as_separate_services_with_health_checks() -> None:
    compose = yaml.safe_load((DEPLOY / "cloud" / "compose.yaml").read_text())
    services = compose["services"]
    assert int(services["ingest"]["environment"]["FLEETLINK_INGEST_WORKERS"]) >= 1
    assert "replicas" in services["ingest"]["deploy"]  # docker compose up --scale ingest=N
    for name in ("api", "ingest"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    assert "timescaledb" in services["postgres"]["image"]


def test_the_device_unit_is_hardened_and_passes_systemd_analyze(tmp_path: Path) -> None:
    unit = (DEPLOY / "edge" / "fleetlink-edge.service").read_text()
    for setting in (
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=fleetlink",
        "Restart=on-failure",
        "Type=notify",
        "WatchdogSec=",
    ):
        assert setting in unit, setting
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (tests/run.sh installs systemd)"
    # verify also checks that ExecStart's binary exists; point it at one that does.
    copy = tmp_path / "fleetlink-edge.service"
    copy.write_text(unit.replace("/usr/local/bin/fleetlink", shutil.which("true") or "/bin/true"))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
