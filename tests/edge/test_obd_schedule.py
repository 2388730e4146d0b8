"""The per-PID scheduler: each command at its own rate, high priority first, requests filled."""

from __future__ import annotations

from collections import Counter

from fleetlink.edge.link.multi_pid import is_mode_01
from fleetlink.edge.sources.obd_schedule import PidSchedule
from fleetlink.firmware_profiles import PidRate


def rate(command: str, hz: float, priority: str = "normal") -> PidRate:
    return PidRate(command=command, rate_hz=hz, priority=priority)  # type: ignore[arg-type]


def test_each_command_is_read_at_its_own_rate() -> None:
    schedule = PidSchedule([rate("RPM", 10), rate("COOLANT_TEMP", 1)], 0.0, is_mode_01)
    reads: Counter[str] = Counter()
    for step in range(100):  # ten seconds in 0.1 s steps, one PID per request
        while batch := schedule.next_batch(step / 10 + 1e-9, size=1):
            reads.update(batch)
    assert reads == {"RPM": 100, "COOLANT_TEMP": 10}


def test_high_priority_goes_first_and_a_request_carries_up_to_its_size() -> None:
    rates = [
        rate("COOLANT_TEMP", 1, "low"),
        rate("RPM", 10, "high"),
        rate("SPEED", 10, "high"),
        rate("FUEL_LEVEL", 1, "low"),
    ]
    schedule = PidSchedule(rates, 0.0, is_mode_01)
    assert schedule.next_batch(0.0, size=3) == ["RPM", "SPEED", "COOLANT_TEMP"]
    assert schedule.next_batch(0.0, size=3) == ["FUEL_LEVEL"]
    assert schedule.next_batch(0.01, size=3) == []


def test_pids_due_soon_fill_a_request_instead_of_taking_one_of_their_own() -> None:
    schedule = PidSchedule([rate("RPM", 10), rate("SPEED", 10)], 0.0, is_mode_01)
    assert schedule.next_batch(0.0, size=6) == ["RPM", "SPEED"]
    schedule.next_batch(0.1, size=1)  # RPM alone: the bus was busy
    assert schedule.next_batch(0.16, size=6) == ["SPEED", "RPM"]  # RPM due at 0.2: soon


def test_the_battery_reading_is_never_packed_with_pids() -> None:
    battery = PidRate.model_construct(command="ELM_VOLTAGE", rate_hz=1.0, priority="high")
    schedule = PidSchedule([battery, rate("RPM", 1)], 0.0, is_mode_01)
    assert schedule.next_batch(0.0, size=6) == ["ELM_VOLTAGE"]
    assert schedule.next_batch(0.0, size=6) == ["RPM"]


def test_a_bus_that_cannot_keep_up_is_counted_and_high_priority_still_comes_first() -> None:
    counters: Counter[str] = Counter()
    rates = [rate("RPM", 10, "high"), rate("COOLANT_TEMP", 10, "low")]
    schedule = PidSchedule(rates, 0.0, is_mode_01, counters)
    # the bus answers one request every 0.2 s while both PIDs want one every 0.1 s
    reads = [schedule.next_batch(t / 10 + 1e-9, size=1)[0] for t in range(0, 20, 2)]
    assert reads.count("RPM") >= 5  # RPM kept at least its share
    assert counters["rounds_late"] > 0
