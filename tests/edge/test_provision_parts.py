"""The parts of provisioning that need no vehicle: the TOML it writes, the CAN interfaces it
finds, the profile it suggests, the state file, and the systemd unit it installs."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlink.edge.provision import ProvisionError
from fleetlink.edge.provision.detect import can_interfaces
from fleetlink.edge.provision.device_files import render_toml
from fleetlink.edge.provision.profile_match import suggest_profiles
from fleetlink.edge.provision.state import ProvisionState
from fleetlink.edge.provision.systemd import install_unit, render_unit, systemd_running
from fleetlink.firmware_profiles import load_profile
from fleetlink.shared.vin import decode_vin

DEPLOY_UNIT = Path(__file__).parents[2] / "deploy" / "edge" / "fleetlink-edge.service"


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"^[a-z_]{1,12}$", fullmatch=True),
        st.one_of(st.text(), st.integers(-(2**40), 2**40), st.booleans()),
        max_size=6,
    )
)
def test_written_toml_reads_back_to_the_same_values(table: dict[str, object]) -> None:
    text = render_toml({"top": "v", "section": table})
    assert tomllib.loads(text) == {"top": "v", "section": table}


def test_can_interfaces_are_the_network_devices_of_type_can(tmp_path: Path) -> None:
    for name, kind in (("can0", "280"), ("vcan1", "280"), ("eth0", "1"), ("lo", "772")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(f"{kind}\n")
    assert can_interfaces(tmp_path) == ["can0", "vcan1"]


def test_a_vehicle_without_a_platform_profile_gets_the_generic_one() -> None:
    assert suggest_profiles(decode_vin("1HGCM82633A004352"))[-1] == "generic-obd2"
    assert "generic-obd2" in suggest_profiles(None)
    # Only profiles obd.profile may name: a CAN-only profile is never offered for polling.
    suggested = suggest_profiles(decode_vin("1HGCM82633A004352"))
    assert all(load_profile(p).obd is not None for p in suggested)


def test_the_state_file_is_private_and_a_corrupt_one_is_named(tmp_path: Path) -> None:
    state = ProvisionState(tmp_path)
    state.save("enroll", {"device_id": "d1", "mqtt_password": "pw", "device_key": "k"})
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    state.forget_secrets()
    assert ProvisionState(tmp_path).get("enroll") == {"device_id": "d1"}
    state.path.write_text("{not json")
    with pytest.raises(ProvisionError, match=r"provision\.json"):
        ProvisionState(tmp_path)


def test_the_shipped_unit_is_the_one_provisioning_installs() -> None:
    assert DEPLOY_UNIT.read_text() == render_unit(Path("/etc/fleetlink/device.toml"))


@pytest.mark.skipif(systemd_running(), reason="this machine runs systemd")
def test_without_systemd_the_message_says_how_to_start_the_agent(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match=r"fleetlink edge run --config /etc/x\.toml"):
        install_unit(Path("/etc/x.toml"), [], tmp_path)
    assert not (tmp_path / "fleetlink-edge.service").exists()


def test_an_answers_file_with_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fleetlink.edge.cli import app

    answers = tmp_path / "answers.toml"
    answers.write_text('cloud = "http://127.0.0.1:9"\nobd_prot = "/dev/ttyUSB0"\n')
    result = CliRunner().invoke(
        app, ["provision", "--answers", str(answers), "--state-dir", str(tmp_path), "--yes"]
    )
    assert result.exit_code == 1
    assert "obd_prot" in result.output and "answers.toml" in result.output
    assert not (tmp_path / "provision.json").exists()
