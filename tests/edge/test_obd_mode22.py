"""The OBD source polls OBDb mode 22 commands on their ECUs beside mode 01, over the simulator."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.mode22 import Mode22Reader
from fleetlink.edge.link.multi_pid import read_pids
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_schedule import PidSchedule
from fleetlink.edge.sources.obd_source import ObdSource
from fleetlink.firmware_profiles import load_profile
from fleetlink.firmware_profiles.obdb import VehicleSignals
from fleetlink.firmware_profiles.schema import PidRate
from fleetlink.shared.signals import by_name
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.obdb_ecus import ObdbEcus, TractionBattery
from tests.field_data import field_data
from tests.waiting import wait_until

FIELD = field_data("obdb")
needs_field_data = pytest.mark.skipif(
    not FIELD.is_dir(), reason=f"OBDb field data not present at {FIELD}"
)
FILES = [
    FIELD / name / "signalsets" / "v3" / "default.json"
    for name in ("Chevrolet-Bolt-EV", "Chevrolet")
]
SOC = by_name("Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed").id
ODOMETER = by_name("Vehicle.TraveledDistance").id
TYRE_FL = by_name("Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure").id
SPEED = by_name("Vehicle.Speed").id
# Commands the simulated vehicle has no answer for: an ECU that is not there, a DID refused.
MISSING = {
    "commands": [
        {
            "hdr": "7E5",
            "rax": "7ED",
            "cmd": {"22": "1111"},
            "freq": 0.2,
            "signals": [
                {
                    "id": "X_RANGE",
                    "suggestedMetric": "fuelRange",
                    "fmt": {"len": 16, "max": 65535, "unit": "kilometers"},
                }
            ],
        },
        {
            "hdr": "7E4",
            "rax": "7EC",
            "cmd": {"22": "FFFF"},
            "freq": 0.2,
            "signals": [
                {
                    "id": "X_SOH",
                    "suggestedMetric": "stateOfHealth",
                    "fmt": {"len": 8, "max": 100, "unit": "percent"},
                }
            ],
        },
    ]
}


def test_due_commands_of_one_ecu_are_read_together_and_mode_01_apart() -> None:
    rates = [
        PidRate.model_construct(command=c, rate_hz=1.0, priority="normal")
        for c in ("a1", "b1", "a2", "RPM", "a3", "b2")
    ]
    schedule = PidSchedule(
        rates,
        0.0,
        lambda c: c == "RPM",
        group=lambda c: c[0] if c != "RPM" else None,
        group_size=2,
    )
    batches = [schedule.next_batch(0.0, 6) for _ in range(5)]
    assert batches == [["a1", "a2"], ["b1", "b2"], ["RPM"], ["a3"], []]


def test_a_profile_names_signalsets_found_under_the_obdb_folder(tmp_path: Path) -> None:
    profile_file = tmp_path / "bolt.toml"
    profile_file.write_text(
        """format = 2
id = "bolt-ev"
name = "Chevrolet Bolt EV"
version = "1.0.0"
[obd]
[[obd.poll]]
commands = ["SPEED"]
rate_hz = 1.0
[obd.obdb]
signalsets = ["Chevrolet-Bolt-EV", "Chevrolet"]
model_year = 2019
"""
    )
    profile = load_profile(profile_file)
    section = ObdSection(port="/dev/null", obdb_dir=tmp_path / "obdb")
    assert section.signalset_files(profile) == [
        tmp_path / "obdb" / "Chevrolet-Bolt-EV" / "signalsets" / "v3" / "default.json",
        tmp_path / "obdb" / "Chevrolet" / "signalsets" / "v3" / "default.json",
    ]
    override = ObdSection(port="/dev/null", signalsets=[tmp_path / "mine.json"])
    assert override.signalset_files(profile) == [tmp_path / "mine.json"]


def _drain(samples: queue.Queue[Sample]) -> list[Sample]:
    out = []
    while not samples.empty():
        out.append(samples.get_nowait())
    return out


@pytest.fixture(scope="module")
def bolt() -> Iterator[SimulatedVehicle]:
    ecus = ObdbEcus.from_files(FILES, 2019, TractionBattery(pct_per_km=1.0))
    sim = SimulatedVehicle(seed=3, style=0.6, latency_s=0.005, speed_factor=10, obdb=ecus)
    sim.start()
    yield sim
    sim.stop()


@needs_field_data
def test_mode_22_values_arrive_in_catalog_units_and_missing_ecus_are_backed_off(
    bolt: SimulatedVehicle, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps(MISSING))
    section = ObdSection.model_validate(
        {
            "port": bolt.port,
            "timeout_s": 0.2,
            "battery_rate_hz": 0,
            "poll": [PollGroup(commands=["RPM", "SPEED"], rate_hz=5)],
            "signalsets": [missing, *FILES],
            "model_year": 2019,
        }
    )
    source = ObdSource(section)
    samples: queue.Queue[Sample] = queue.Queue()
    started = time.monotonic()
    source.start(samples)
    try:
        wait_until(lambda: source.counters["obdb_ok"] >= 30, 20)
        time.sleep(2.0)
    finally:
        source.stop()
    elapsed_s = time.monotonic() - started
    got = _drain(samples)
    soc = [s.value for s in got if s.signal_id == SOC]
    odometer = [s.value for s in got if s.signal_id == ODOMETER]
    assert len(soc) >= 3 and soc[-1] < soc[0] <= 90.01
    assert odometer[-1] > odometer[0]
    assert all(240 < s.value < 250 for s in got if s.signal_id == TYRE_FL)  # 35.5 psi in kPa
    assert any(s.signal_id == SPEED for s in got)
    counters = source.counters
    # each missing command was asked once, then once more per backoff (5 s at first): probes,
    # not 5 requests a second
    probes = 1 + int(elapsed_s // 5)
    assert 1 <= counters["obdb_no_data"] <= probes and 1 <= counters["obdb_negative"] <= probes
    assert counters["obdb_ecus_backed_off"] == 1 and counters["obdb_dids_backed_off"] == 1
    assert counters["obdb_skipped_backoff"] >= 10
    failed = counters["obdb_no_data"] + counters["obdb_negative"]
    assert counters["obdb_ok"] == counters["obdb_requests"] - failed
    # the adapter is pointed at an ECU once per group of commands, not once per command
    assert counters["ecu_selections"] < counters["obdb_requests"]
    status = source.obdb_status()
    assert status is not None and status.commands >= 10
    assert (status.ecus_backed_off, status.dids_backed_off) == (1, 1)
    assert status.ok == counters["obdb_ok"] and status.skipped_backoff >= 10
    assert source.report_changes >= 3  # the backoffs were reported (status republished)


@needs_field_data
def test_the_reader_switches_headers_only_when_the_ecu_changes_and_restores_mode_01(
    bolt: SimulatedVehicle,
) -> None:
    vehicle = VehicleSignals.from_files(FILES, 2019)
    by_request = {(c.header, c.request()): c for c in vehicle.commands}
    link = Elm327Link(bolt.port or "", timeout_s=0.5)
    assert link.open() == "vehicle"
    try:
        reader = Mode22Reader(link)
        soc = by_request[("7E4", "2243AF")]
        first = reader.read(soc)
        again = reader.read(soc)
        assert first.kind == again.kind == "ok"
        assert link.counters["header_switches"] == 2  # ATSH7E4, ATCRA7EC, once
        odometer = reader.read(by_request[("DA1A", "22448F")])  # 29-bit: ATSP7 ATCP18 ATSH ATCRA
        assert odometer.kind == "ok" and link.counters["header_switches"] == 6
        assert odometer.values["CHEVROLET_ODO"] == pytest.approx(
            bolt.snapshot().odometer_km, abs=0.5
        )
        assert reader.restore() and link.counters["header_switches"] == 9  # ATSP6 ATSH7DF ATAR
        assert read_pids(link, ["RPM"])[0].kind == "ok"
    finally:
        link.close()


@needs_field_data
def test_an_adapter_without_atcra_still_reads_the_command_by_its_reply_id() -> None:
    vehicle = VehicleSignals.from_files(FILES, 2019)
    soc = next(c for c in vehicle.commands if c.request() == "2243AF")
    sim = SimulatedVehicle(seed=4, latency_s=0.002, obdb=ObdbEcus(vehicle))
    sim.start()
    sim.elm327.quirks.rejected_at = frozenset({"CRA"})
    link = Elm327Link(sim.port or "", timeout_s=0.5)
    try:
        assert link.open() == "vehicle"
        reader = Mode22Reader(link)
        reply = reader.read(soc)
        assert reply.kind == "ok" and reply.values["BOLT_HVBAT_SOC_RAW"] == pytest.approx(
            90.0, abs=0.01
        )
        assert not reader.receive_filter and link.counters["header_refused"] == 1
        assert reader.restore() and read_pids(link, ["SPEED"])[0].kind == "ok"
    finally:
        link.close()
        sim.stop()


def test_backoff_grows_per_ecu_ends_on_an_answer_and_is_forgotten_on_waking() -> None:
    from collections import Counter

    from fleetlink.edge.link.mode22 import Mode22Reply
    from fleetlink.edge.sources.obd_obdb import ObdbPolling, command_name
    from fleetlink.firmware_profiles.obdb.signalset import parse_command

    now = [0.0]
    vehicle = VehicleSignals(tuple(parse_command(c) for c in MISSING["commands"]))
    counters: Counter[str] = Counter()
    polling = ObdbPolling(vehicle, counters, clock=lambda: now[0])
    absent, refused = (command_name(c) for c in vehicle.commands)
    polling.note(absent, Mode22Reply("no_data", detail="NO DATA"))
    assert polling.waiting(absent) and not polling.waiting(refused)  # another ECU
    now[0] = 5.01
    assert not polling.waiting(absent)  # the probe
    polling.note(absent, Mode22Reply("no_data", detail="NO DATA"))
    now[0] = 5.01 + 4.99
    assert polling.waiting(absent)  # the second wait is 5-10 s
    polling.note(refused, Mode22Reply("negative"))
    assert polling.waiting(refused)
    polling.forget_backoffs()
    assert not polling.waiting(absent) and not polling.waiting(refused)
    polling.note(absent, Mode22Reply("ok", {"X_RANGE": 100.0}))
    assert counters["obdb_ecus_backed_off"] == 1 and counters["obdb_dids_backed_off"] == 1
