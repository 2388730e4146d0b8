"""Real vehicles' DBC files (opendbc, in the team's field data) load and decode.

Every DBC in ``field-data/opendbc`` is loaded with the loader the agent uses; frames are
encoded from each message with cantools and decoded back. Files cantools rejects in strict
mode (overlapping signals, for one) are loaded leniently and named in the report, as the
agent would name them; none may crash the loader.
"""

from __future__ import annotations

import queue
from pathlib import Path

import can
import pytest
from cantools.database.can import Message, Signal

from fleetlink.edge.config import CanSection
from fleetlink.edge.sources.can_source import CanSource
from fleetlink.firmware_profiles import ProfileError, load_can_profile
from fleetlink.firmware_profiles.can import load_dbc
from fleetlink.shared.signals import by_name
from tests.field_data import field_data
from tests.waiting import wait_until

OPENDBC = field_data("opendbc")

pytestmark = pytest.mark.skipif(
    not OPENDBC.is_dir(), reason=f"the opendbc field data is not on this machine ({OPENDBC})"
)


def _dbc_files() -> list[Path]:
    return sorted(OPENDBC.glob("*.dbc")) if OPENDBC.is_dir() else []


def _value(signal: Signal) -> float:
    """Return a value the signal's bits can hold: a third of its raw range, scaled."""
    if signal.is_float:
        raw: float = 1.5
    elif signal.is_signed:
        raw = -((2 ** (signal.length - 1)) // 3)
    else:
        raw = (2**signal.length - 1) // 3
    return float(raw * signal.scale + signal.offset)


def _roundtrip(message: Message) -> bool:
    """Encode values into ``message`` and decode them back (asserting each); False for a
    multiplexed message or one whose signals do not fit its length (an opendbc quirk)."""
    if message.is_multiplexed():
        return False
    values = {s.name: _value(s) for s in message.signals}
    try:
        data = message.encode(values, strict=False)
    except OverflowError:
        return False
    decoded = message.decode(data, decode_choices=False)
    for signal in message.signals:
        expected = values[signal.name]
        assert decoded[signal.name] == pytest.approx(expected, abs=abs(signal.scale) + 1e-9), (
            f"{message.name}.{signal.name}"
        )
    return True


def test_every_opendbc_file_loads_and_its_frames_decode() -> None:
    files = _dbc_files()
    assert files, f"no .dbc files in {OPENDBC}"
    strict_rejects: dict[str, str] = {}
    decoded = total = 0
    for path in files:
        try:
            database = load_dbc(path)
        except ProfileError as exc:
            strict_rejects[path.name] = str(exc)
            database = load_dbc(path, strict=False)
        assert database.messages, path.name
        roundtrips = sum(_roundtrip(m) for m in database.messages)
        assert roundtrips >= 0.8 * len(database.messages), f"{path.name}: {roundtrips}"
        decoded += roundtrips
        total += len(database.messages)
    print(f"\n{len(files)} opendbc files: {decoded} of {total} messages encoded and decoded")
    for name, reason in strict_rejects.items():
        print(f"strict load refused {name}: {reason}")
    # The known case: vw_mqb.dbc has overlapping signals, which cantools' strict mode refuses.
    assert set(strict_rejects) <= {p.name for p in files}
    assert all("overlapping" in reason for reason in strict_rejects.values())


def test_the_agent_reads_a_real_cars_signal_through_a_profile_naming_an_opendbc_file(
    tmp_path: Path,
) -> None:
    dbc = OPENDBC / "toyota_prius_2010_pt.dbc"
    if not dbc.is_file():
        pytest.skip(f"{dbc.name} is not in the field data")
    database = load_dbc(dbc)
    message = next(m for m in database.messages if m.name == "SPEED")
    profile = tmp_path / "prius.toml"
    profile.write_text(
        f"""format = 2
id = "prius"
name = "Prius"
version = "1.0.0"
[can]
interface = "virtual"
channel = "prius-test"
dbc = ["{dbc}"]
[[can.signals]]
message = "SPEED"
signal = "SPEED"
vss = "Vehicle.Speed"
interval_ms = 0
""",
        encoding="utf-8",
    )
    loaded = load_can_profile(profile)
    source = CanSource(CanSection(profile=str(profile)), loaded)
    samples: queue.Queue = queue.Queue()
    source.start(samples)
    sender = can.Bus(interface="virtual", channel="prius-test")
    try:
        wait_until(lambda: source.counters["connects"] > 0, 5, "the source to open the bus")
        values = {s.name: _value(s) for s in message.signals}
        values["SPEED"] = 87.5
        sender.send(
            can.Message(
                arbitration_id=message.frame_id,
                is_extended_id=False,
                data=message.encode(values, strict=False),
            )
        )
        sample = samples.get(timeout=5)
    finally:
        source.stop()
        sender.shutdown()
    assert sample.signal_id == by_name("Vehicle.Speed").id
    assert sample.value == pytest.approx(87.5, abs=0.01)
