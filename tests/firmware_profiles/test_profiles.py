"""Firmware profiles are data validated on load; a broken one is refused naming file and field."""

from __future__ import annotations

from pathlib import Path

import obd
import pytest

from fleetlink.edge.config import ConfigError, load_config
from fleetlink.firmware_profiles import (
    DEFAULT_PROFILE,
    ProfileError,
    load_profile,
    profile_ids,
)
from fleetlink.shared.signals import by_obd_command

GENERIC = """
format = 1
id = "acme-van"
name = "Acme van"
version = "1.0.0"

[match]
wmi = ["WF0"]
years = [2014, 2024]

[[obd.poll]]
commands = ["RPM", "SPEED"]
rate_hz = 4
"""


def write(tmp_path: Path, text: str, name: str = "acme-van.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_profile_loads_and_names_itself_after_its_file() -> None:
    assert DEFAULT_PROFILE in profile_ids()
    for profile_id in profile_ids():
        assert load_profile(profile_id).id == profile_id


def test_generic_obd2_polls_mode_01_commands_python_obd_and_the_catalog_both_know() -> None:
    profile = load_profile("generic-obd2")
    assert profile.match.is_fallback
    commands = [c for group in profile.obd.poll for c in group.commands]
    assert {"RPM", "SPEED", "COOLANT_TEMP", "FUEL_LEVEL"} <= set(commands)
    for name in commands:
        assert obd.commands[name].mode == 1
        assert by_obd_command(name).obd_command == name


def test_a_profile_file_loads_by_path_with_its_match_rules(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GENERIC))
    assert profile.match.wmi == ["WF0"] and profile.match.years == (2014, 2024)
    assert not profile.match.is_fallback
    assert profile.obd.poll[0].rate_hz == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("rate_hz = 4", "rate_hz = 0"), "obd.poll[0].rate_hz: must be > 0"),
        (('"SPEED"]', '"WARP_DRIVE"]'), "obd.poll[0].commands: 'WARP_DRIVE' is not an OBD"),
        (("format = 1", "format = 7"), "format: Input should be 1"),
        (('wmi = ["WF0"]', 'wmi = ["WFO!"]'), "match.wmi[0]: String should match pattern"),
        (("years = [2014, 2024]", "years = [2024, 2014]"), "match.years: must be [first, last]"),
        (('name = "Acme van"', 'name = "Acme van"\ncolour = "red"'), "colour: is not a known"),
        (('id = "acme-van"', 'id = "Acme Van"'), "id: must be 1-64 lower-case"),
    ],
)
def test_a_broken_profile_names_the_file_and_the_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = write(tmp_path, GENERIC.replace(*change))
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert f"{path}: {message}" in str(raised.value)


def test_a_command_in_two_poll_groups_is_refused(tmp_path: Path) -> None:
    twice = GENERIC + '\n[[obd.poll]]\ncommands = ["RPM"]\nrate_hz = 1\n'
    with pytest.raises(ProfileError, match=r"\['RPM'\] in more than one group"):
        load_profile(write(tmp_path, twice))


def test_an_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match=r"no such profile \(shipped: .*generic-obd2"):
        load_profile("no-such-vehicle")


DEVICE = """
[device]
id = "van-1"
tenant = "acme"

[obd]
port = "/dev/pts/9"
{obd}

[outbox]
path = "outbox.db"
"""


def test_a_device_without_poll_groups_has_its_profile_chosen_at_connect(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DEVICE.format(obd=""), "device.toml"))
    assert config.obd is not None and config.obd.profile == "auto"
    assert config.obd.fixed_profile() is None
    # until the vehicle answers, the fallback profile is what it would read
    assert config.obd.poll_groups() == load_profile(DEFAULT_PROFILE).obd.poll


def test_a_device_names_a_profile_file_and_reads_its_poll_groups(tmp_path: Path) -> None:
    profile = write(tmp_path, GENERIC)
    device = DEVICE.format(obd=f'profile = "{profile}"')
    config = load_config(write(tmp_path, device, "device.toml"))
    assert config.obd is not None
    assert [g.commands for g in config.obd.poll_groups()] == [["RPM", "SPEED"]]


def test_a_device_naming_a_missing_profile_is_refused_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE.format(obd='profile = "no-such-vehicle"'), "device.toml")
    with pytest.raises(ConfigError, match=rf"{path}: obd.profile: firmware profile 'no-such"):
        load_config(path)


def test_edge_profile_list_lists_each_shipped_profile() -> None:
    from typer.testing import CliRunner

    from fleetlink.edge.cli import app

    result = CliRunner().invoke(app, ["profile", "list"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.splitlines()]
    assert listed == profile_ids()
