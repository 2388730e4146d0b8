"""A broken device configuration stops start-up with an error naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetlink.edge.cli import app
from fleetlink.edge.config import ConfigError, load_config

EXAMPLE = Path(__file__).parents[2] / "deploy" / "edge" / "device.example.toml"

GOOD = """
[device]
id = "truck-1"
tenant = "acme"

[mqtt]
url = "mqtt://127.0.0.1:1883"
username = "truck-1"
password = "s3cret-pw"

[obd]
port = "/dev/pts/9"

[[obd.poll]]
commands = ["RPM", "SPEED"]
rate_hz = 5

[[obd.poll]]
commands = ["COOLANT_TEMP"]
rate_hz = 0.5

[outbox]
path = "outbox.db"
"""


def write(tmp_path: Path, text: str, name: str = "device.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_in_deploy_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.device.id == "truck-042"
    assert config.obd is not None and config.obd.profile == "auto"
    assert config.obd.poll == [] and config.obd.poll_groups()[0].rate_hz == 2


def test_good_config_loads_with_defaults_and_outbox_beside_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.outbox.path == tmp_path / "outbox.db"
    assert config.outbox.batch_interval_s == 1.0
    assert config.mqtt.host == "127.0.0.1" and config.mqtt.port == 1883
    assert config.obd is not None and config.obd.poll[1].commands == ["COOLANT_TEMP"]


def test_password_never_appears_in_the_config_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config.model_dump())
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret-pw"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rate_hz = 0.5", "rate_hz = 0", "obd.poll[1].rate_hz: must be > 0"),
        ("rate_hz = 5", "rate_hz = -2", "obd.poll[0].rate_hz: must be > 0"),
        ('["COOLANT_TEMP"]', '["WARP_DRIVE"]', "obd.poll[1].commands: 'WARP_DRIVE' is not"),
        ('id = "truck-1"', 'id = "truck/1"', "device.id: 'truck/1' must be 1-64 characters"),
        ('tenant = "acme"\n', "", "device.tenant: is required"),
        ('url = "mqtt://127.0.0.1:1883"', 'url = "http://x"', "mqtt.url: must look like mqtt://"),
        ('url = "mqtt://127.0.0.1:1883"', 'url = "mqtt://h:99999"', "mqtt.url: port must be"),
        ('path = "outbox.db"', 'path = "o.db"\nmax_bytes = 0', "outbox.max_bytes:"),
        ('path = "outbox.db"', 'path = "o.db"\ncolour = "red"', "outbox.colour: is not a known"),
        ('port = "/dev/pts/9"\n', "", "obd.port: is required"),
    ],
)
def test_invalid_field_error_names_file_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: {expected}" in str(caught.value)


def test_every_invalid_field_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("rate_hz = 0.5", "rate_hz = 0").replace('"SPEED"', '"NOPE"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    lines = str(caught.value).splitlines()
    assert any("obd.poll[0].commands" in line for line in lines)
    assert any("obd.poll[1].rate_hz" in line for line in lines)


def test_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[device\nid = 1")
    with pytest.raises(ConfigError, match=r"device\.toml: not valid TOML"):
        load_config(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read"):
        load_config(tmp_path / "absent.toml")


def test_check_config_command_exits_2_and_names_the_field(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("rate_hz = 0.5", "rate_hz = 0"))
    result = CliRunner().invoke(app, ["check-config", str(bad)])
    assert result.exit_code == 2
    assert "obd.poll[1].rate_hz: must be > 0" in result.output


def test_check_config_command_accepts_a_good_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check-config", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "ok (device acme/truck-1, 3 OBD commands in 2 poll groups" in result.output


def test_run_command_refuses_a_broken_config_before_starting(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace('tenant = "acme"\n', ""))
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "device.tenant: is required" in result.output
    assert not (tmp_path / "outbox.db").exists()
