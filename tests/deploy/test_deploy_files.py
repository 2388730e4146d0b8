"""The deployment files parse, wire the services together, and carry no default password."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from fleetlink.edge.config import load_config

DEPLOY = Path(__file__).parents[2] / "deploy"


def test_compose_requires_every_password_instead_of_defaulting_it() -> None:
    text = (DEPLOY / "cloud/compose.yaml").read_text()
    compose = yaml.safe_load(text)
    assert {"postgres", "mosquitto", "api", "ingest"} <= set(compose["services"])
    for variable in re.findall(r"\$\{(FLEETLINK_[A-Z_]*PASSWORD)([^}]*)\}", text):
        name, modifier = variable
        assert modifier == "" or modifier.startswith(":?"), f"{name} has a default: {modifier}"
    for service in ("api", "ingest"):
        assert compose["services"][service]["environment"]["FLEETLINK_MODE"] == "production"


def test_mosquitto_refuses_anonymous_clients() -> None:
    conf = (DEPLOY / "cloud/mosquitto.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.MULTILINE)


def test_the_example_device_config_is_valid() -> None:
    example = DEPLOY / "edge/device.example.toml"
    tomllib.loads(example.read_text())
    config = load_config(example)
    assert config.obd is not None and config.obd.poll_groups()


def test_the_cloud_image_copies_everything_the_package_is_built_from() -> None:
    root = DEPLOY.parent
    copied = set()
    for line in (DEPLOY / "cloud/Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {p.split(".")[1] for p in declared["packages"] if p != "fleetlink"}
    root_files = {p.name for p in root.glob("*.py")} | {"py.typed"}
    assert folders | root_files | {"pyproject.toml", "README.md"} <= copied
