"""Format 2 profiles: the CAN bus, its DBC files and mapping, alert limits and model
references are validated on load; a broken one names the file and the line or field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetlink.edge.cli import app
from fleetlink.firmware_profiles import ProfileError, load_can_profile, load_profile
from fleetlink.firmware_profiles.transform import TransformError, compile_math
from fleetlink.shared.signals import by_name

SHIPPED_DBC = Path(load_can_profile("fleetlink-sim-car").dbc_files[0])

CAN_PROFILE = """
format = 2
id = "acme-car"
name = "Acme car"
version = "1.0.0"

[can]
interface = "virtual"
channel = "acme"
dbc = ["{dbc}"]

[[can.signals]]
message = "{message}"
signal = "{signal}"
vss = "{vss}"
{extra}

[alerts]
overspeed_kmh = 120
"""


def write(tmp_path: Path, **fields: str) -> Path:
    values = {
        "dbc": str(SHIPPED_DBC),
        "message": "VEHICLE_SPEED",
        "signal": "VehicleSpeed",
        "vss": "Vehicle.Speed",
        "extra": "",
    } | fields
    path = tmp_path / "acme-car.toml"
    path.write_text(CAN_PROFILE.format(**values), encoding="utf-8")
    return path


def test_the_car_and_truck_profiles_map_their_dbc_signals_to_catalog_names() -> None:
    car = load_can_profile("fleetlink-sim-car")
    truck = load_can_profile("heavy-truck-j1939")
    assert not car.settings.j1939 and truck.settings.j1939
    assert car.settings.bitrate == 500_000 and truck.settings.bitrate == 250_000
    truck_pgns = {(m.frame_id >> 8) & 0x3FFFF for m in truck.messages()}
    assert {0xF004, 0xFEF1, 0xFEEE, 0xFEF2, 0xFEC1, 0xFECA} <= truck_pgns
    speed = next(r for r in truck.rules["EEC1"] if r.signal == "EngineSpeed")
    assert speed.signal_id == by_name("Vehicle.Powertrain.CombustionEngine.Speed").id
    assert all(m.is_extended_frame for m in truck.messages())
    assert not any(m.is_extended_frame for m in car.messages())
    assert load_profile("fleetlink-sim-car").alerts.overspeed_kmh == 130


def test_recorded_j1939_frames_decode_to_the_standard_values() -> None:
    # Bytes as a J1939 engine sends them: EEC1 at 1,500 rpm (SPN 190: 0.125 rpm/bit),
    # CCVS1 at 80.5 km/h (SPN 84: 1/256 km/h per bit), ET1 coolant 90 degC (SPN 110: -40 offset),
    # HRVD 123,456.785 km as 5 m per bit (SPN 917).
    truck = load_can_profile("heavy-truck-j1939").database
    eec1 = truck.decode_message(0x0CF00400, bytes.fromhex("F07D7DE02E00FFFF"))
    assert eec1["EngineSpeed"] == 1500.0
    ccvs = truck.decode_message(0x18FEF100, bytes.fromhex("F380501FFFFFFFFF"))
    assert ccvs["WheelBasedVehicleSpeed"] == pytest.approx(80.5)
    et1 = truck.decode_message(0x18FEEE00, bytes.fromhex("82FF2025FFFFFFFF"))
    assert et1["EngineCoolantTemperature"] == 90
    hrvd = truck.decode_message(0x18FEC100, (24_691_357).to_bytes(4, "little") + bytes(4))
    assert hrvd["HighResolutionTotalVehicleDistance"] == 123_456_785


def test_a_format_1_profile_still_loads_but_cannot_have_can_sections(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("format = 2", "format = 1"), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"acme-car.toml: .*can, alerts: need format = 2"):
        load_profile(path)


def test_a_missing_dbc_file_is_named_with_its_field(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"acme-car.toml: can.dbc\[0\]: no DBC file .*nope.dbc"):
        load_profile(write(tmp_path, dbc="nope.dbc"))


def test_a_broken_dbc_file_is_named_with_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.dbc"
    lines = SHIPPED_DBC.read_text(encoding="cp1252").splitlines()
    lines[9] = " SG_ EngineSpeed : bogus"
    broken.write_text("\n".join(lines), encoding="cp1252")
    with pytest.raises(ProfileError, match=r"broken.dbc:10: not a valid DBC file"):
        load_profile(write(tmp_path, dbc="broken.dbc"))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"message": "NOPE"}, r"can.signals\[0\].message: no message 'NOPE'"),
        ({"signal": "Nope"}, r"can.signals\[0\].signal: message 'VEHICLE_SPEED' has no signal"),
        ({"vss": "Vehicle.Nope"}, r"can.signals\[0\].vss: 'Vehicle.Nope' is not a signal"),
        ({"extra": "transform = { math = \"__import__('os')\" }"}, r"is not allowed"),
        ({"extra": 'transform = { math = "x.real" }'}, r"is not allowed"),
        ({"extra": 'transform = { math = "x", mapping = { 1 = 2 } }'}, r"exactly one"),
        ({"extra": "interval_ms = -1"}, r"interval_ms: Input should be greater"),
    ],
)
def test_a_bad_mapping_is_refused_naming_its_field(
    tmp_path: Path, fields: dict[str, str], error: str
) -> None:
    with pytest.raises(ProfileError, match=error):
        load_profile(write(tmp_path, **fields))


def test_a_value_mapping_resolves_the_dbcs_names_and_refuses_unknown_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        message="TRANSMISSION",
        signal="Gear",
        vss="Vehicle.Powertrain.Transmission.CurrentGear",
        extra='transform = { mapping = { REVERSE = -1, NEUTRAL = 0, "1" = 1 } }',
    )
    rule = load_can_profile(path).rules["TRANSMISSION"][0]
    assert rule.transform is not None
    assert [rule.transform(raw, {}) for raw in (-1.0, 0.0, 1.0)] == [-1, 0, 1]
    with pytest.raises(KeyError):
        rule.transform(2.0, {})
    path.write_text(path.read_text().replace("REVERSE", "BACKWARDS"), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"transform.mapping: 'BACKWARDS' is neither"):
        load_profile(path)


def test_math_transforms_compute_without_eval() -> None:
    assert compile_math("x / 1000")(123_456.0, {}) == 123.456
    assert compile_math("round(max(0, x * 3.6 - 1), 1)")(10.0, {}) == 35.0
    assert compile_math("-x ** 2 + abs(-3) % 2")(3.0, {}) == -8.0
    assert compile_math("x + 65536 * High", {"High"})(0xF000, {"High": 7}) == 520_192
    for bad in ("open('f')", "x if x else 1", "[x]", "x.__class__", "lambda: 1", "", "y + 1"):
        with pytest.raises(TransformError):
            compile_math(bad, {"High"})
    with pytest.raises(OverflowError):
        compile_math("x ** 1000")(2.0, {})


def test_a_transform_naming_a_signal_the_message_lacks_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, extra='transform = { math = "x + Nope" }')
    with pytest.raises(ProfileError, match=r"signals\[0\].transform.math: 'Nope' is neither x"):
        load_profile(path)


def test_profile_commands_list_show_and_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["profile", "list"])
    assert listed.exit_code == 0, listed.output
    for name in ("generic-obd2", "fleetlink-sim-car", "heavy-truck-j1939"):
        assert name in listed.output
    shown = runner.invoke(app, ["profile", "show", "heavy-truck-j1939"])
    assert shown.exit_code == 0, shown.output
    assert "EEC1.EngineSpeed -> Vehicle.Powertrain.CombustionEngine.Speed" in shown.output
    assert "J1939" in shown.output and "overspeed_kmh 90" in shown.output
    good = runner.invoke(app, ["profile", "validate", str(write(tmp_path))])
    assert good.exit_code == 0 and "ok (acme-car 1.0.0" in good.output
    bad = runner.invoke(app, ["profile", "validate", str(write(tmp_path, dbc="x.dbc"))])
    assert bad.exit_code == 2
    assert "acme-car.toml: can.dbc[0]: no DBC file" in bad.output


def test_a_device_config_whose_can_profile_names_a_missing_dbc_does_not_start(
    tmp_path: Path,
) -> None:
    from fleetlink.edge.config import ConfigError, load_config

    profile = write(tmp_path, dbc="gone.dbc")
    config = tmp_path / "device.toml"
    config.write_text(
        f"""[device]
id = "van-1"
tenant = "acme"
[can]
profile = "{profile}"
[outbox]
path = "o.db"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    message = str(raised.value)
    assert message.startswith(f"{config}: can.profile: {profile}: can.dbc[0]: no DBC file")
    assert "gone.dbc" in message
