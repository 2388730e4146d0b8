"""``fleetlink diag can`` on python-can's virtual bus with a real opendbc DBC: sniffing with
decoding and filters, recording in each log format, replaying, decoding logs, and the files
that cannot be read."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import can
import cantools
import pytest
from typer.testing import CliRunner

from fleetlink.edge.diag import app
from fleetlink.edge.diag.errors import ExitCode
from fleetlink.simulator.can_bus import SimulatedCanBus
from fleetlink.simulator.vehicle import Vehicle
from tests.field_data import field_data

runner = CliRunner()
PRIUS = field_data("opendbc") / "toyota_prius_2010_pt.dbc"
SPEED_ID, UNKNOWN_ID = 0xB4, 0x7FF

pytestmark = pytest.mark.skipif(not PRIUS.exists(), reason="needs the opendbc field data")


def _frames() -> list[can.Message]:
    db = cantools.database.load_file(str(PRIUS), strict=False)
    speed = db.get_message_by_frame_id(SPEED_ID)
    data = speed.encode({"ENCODER": 0, "SPEED": 42.5, "CHECKSUM": 0}, strict=False)
    return [
        can.Message(arbitration_id=SPEED_ID, data=data, is_extended_id=False),
        can.Message(arbitration_id=UNKNOWN_ID, data=b"\x01\x02", is_extended_id=False),
    ]


@pytest.fixture
def channel() -> Iterator[str]:
    yield f"diag-{uuid.uuid4().hex[:8]}"


def _send_until(channel: str, stop: threading.Event) -> threading.Thread:
    def send() -> None:
        with can.Bus(interface="virtual", channel=channel) as bus:
            while not stop.is_set():
                for message in _frames():
                    bus.send(message)
                time.sleep(0.01)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["can", *args], env={"COLUMNS": "120", "NO_COLOR": "1"})


def test_sniff_decodes_known_ids_and_lists_unknown_ones(channel: str) -> None:
    stop = threading.Event()
    sender = _send_until(channel, stop)
    try:
        result = _invoke(
            "sniff", "-i", "virtual", "-c", channel, "--dbc", str(PRIUS), "-n", "10", "--json"
        )
    finally:
        stop.set()
        sender.join()
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ids = {row["id"]: row for row in data["ids"]}
    assert ids["0xB4"]["name"] == "SPEED" and ids["0xB4"]["signals"]["SPEED"] == pytest.approx(
        42.5, abs=0.01
    )
    assert data["unknown_ids"] == ["0x7FF"] and ids["0x7FF"]["name"] is None
    assert ids["0xB4"]["count"] + ids["0x7FF"]["count"] == 10


def test_sniff_filters_by_signal(channel: str) -> None:
    stop = threading.Event()
    sender = _send_until(channel, stop)
    try:
        result = _invoke(
            "sniff",
            "-i",
            "virtual",
            "-c",
            channel,
            "--dbc",
            str(PRIUS),
            "--signal",
            "SPEED",
            "-n",
            "6",
            "--json",
        )
    finally:
        stop.set()
        sender.join()
    data = json.loads(result.stdout)
    assert [row["id"] for row in data["ids"]] == ["0xB4"]
    assert data["ids"][0]["signals"].keys() == {"SPEED"}


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf"])
@pytest.mark.parametrize("name_end", ["", "-4000000"])  # a number no log's channel field holds
def test_record_then_decode_and_replay_each_format(
    channel: str, tmp_path: Path, suffix: str, name_end: str
) -> None:
    channel += name_end
    path = tmp_path / f"trip{suffix}"
    stop = threading.Event()
    sender = _send_until(channel, stop)
    try:
        result = _invoke("record", str(path), "-i", "virtual", "-c", channel, "-n", "8", "--json")
    finally:
        stop.set()
        sender.join()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"file": str(path), "frames": 8}

    decoded = _invoke("decode", str(path), "--dbc", str(PRIUS), "--id", "0xB4", "--json")
    assert decoded.exit_code == 0, decoded.output
    frames = json.loads(decoded.stdout)["frames"]
    assert frames and all(
        f["name"] == "SPEED" and f["signals"]["SPEED"] == pytest.approx(42.5, abs=0.01)
        for f in frames
    )

    listener = can.Bus(interface="virtual", channel=f"{channel}-replay")
    try:
        replayed = _invoke(
            "replay", str(path), "-i", "virtual", "-c", f"{channel}-replay", "--fast", "--json"
        )
        assert json.loads(replayed.stdout) == {"file": str(path), "frames": 8}
        got = [listener.recv(timeout=1.0) for _ in range(8)]
        assert all(m is not None for m in got)
        assert {m.arbitration_id for m in got if m} == {SPEED_ID, UNKNOWN_ID}
    finally:
        listener.shutdown()


def test_decode_prints_a_table_of_what_it_found(tmp_path: Path) -> None:
    path = tmp_path / "trip.log"
    with can.Logger(str(path)) as writer:
        for message in _frames():
            message.timestamp = 1.0
            writer.on_message_received(message)
    result = _invoke("decode", str(path), "--dbc", str(PRIUS))
    assert result.exit_code == 0, result.output
    assert "SPEED=42.5" in result.stdout or "SPEED=42.49" in result.stdout
    assert "0x7FF" in result.stdout and "unknown" in result.stdout


def test_a_log_in_an_unknown_format_and_a_broken_dbc_are_one_line_errors(tmp_path: Path) -> None:
    odd = tmp_path / "trip.xyz"
    odd.write_text("nothing")
    result = _invoke("decode", str(odd), "--dbc", str(PRIUS))
    assert result.exit_code == ExitCode.BAD_FILE
    assert result.stderr.strip().startswith("error: ") and "unknown log format" in result.stderr
    broken = tmp_path / "broken.dbc"
    broken.write_text('VERSION ""\nBO_ nonsense here\n')
    log = tmp_path / "trip.log"
    log.write_text("(1.0) vcan0 0B4#0000000000000000\n")
    result = _invoke("decode", str(log), "--dbc", str(broken))
    assert result.exit_code == ExitCode.BAD_FILE and "does not load" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "trip.blf"
    garbage.write_bytes(b"not a blf file at all" * 10)
    result = _invoke("decode", str(garbage), "--dbc", str(PRIUS))
    assert result.exit_code == ExitCode.BAD_FILE and "not a readable .blf log" in result.stderr


def test_sniff_decodes_the_simulated_car_through_its_firmware_profile(channel: str) -> None:
    vehicle = Vehicle(5)
    vehicle.set_ignition(True)
    with SimulatedCanBus(vehicle, "car", "virtual", channel=channel):
        result = _invoke(
            "sniff",
            "-i",
            "virtual",
            "-c",
            channel,
            "--profile",
            "fleetlink-sim-car",
            "-n",
            "300",
            "--json",
        )
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.stdout)["ids"]}
    assert "VEHICLE_SPEED" in names  # a message of the profile's own DBC
    both = _invoke("sniff", "-i", "virtual", "--dbc", str(PRIUS), "--profile", "fleetlink-sim-car")
    assert both.exit_code != 0 and "not both" in both.output
