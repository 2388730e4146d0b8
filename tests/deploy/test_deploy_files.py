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
    assert {"postgres", "mosquitto", "cloud"} <= set(compose["services"])
    for variable in re.findall(r"\$\{(FLEETLINK_[A-Z_]*PASSWORD)([^}]*)\}", text):
        name, modifier = variable
        assert modifier == "" or modifier.startswith(":?"), f"{name} has a default: {modifier}"
    cloud = compose["services"]["cloud"]["environment"]
    assert cloud["FLEETLINK_MODE"] == "production"


def test_mosquitto_refuses_anonymous_clients() -> None:
    conf = (DEPLOY / "cloud/mosquitto.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.MULTILINE)


def test_the_example_device_config_is_valid() -> None:
    example = DEPLOY / "edge/device.example.toml"
    tomllib.loads(example.read_text())
    config = load_config(example)
    assert config.obd is not None and config.obd.poll
