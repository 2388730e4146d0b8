"""The in-cab rules fed recorded-style signal sequences, and the gate's hysteresis and
cooldown under hypothesis."""

from __future__ import annotations

import itertools
import math
import uuid

from hypothesis import given
from hypothesis import strategies as st

from fleetlink.edge.alerts.engine import build_rules, signal_history
from fleetlink.edge.alerts.history import SignalHistory
from fleetlink.edge.alerts.rules import (
    ACCEL_LATERAL,
    ACCEL_LONGITUDINAL,
    BATTERY,
    COOLANT,
    DM1_SPN,
    FUEL_LEVEL,
    LATITUDE,
    LONGITUDE,
    RPM,
    SPEED,
    YAW_RATE,
    Gate,
)
from fleetlink.edge.alerts.settings import AlertsSection, RuleSettings
from fleetlink.edge.alerts.zones import SpeedZones
from fleetlink.firmware_profiles import load_profile
from fleetlink.firmware_profiles.schema import AlertThresholds
from fleetlink.shared.messages import DeviceFence, GeofenceSet

T0 = 1_700_000_000_000


def _run(
    samples: list[tuple[int, int, float]],
    settings: AlertsSection | None = None,
    profile: AlertThresholds | None = None,
    zones: SpeedZones | None = None,
) -> list[tuple[str, int, float]]:
    """Feed (signal, ms after T0, value) samples in time order; return (rule, ms, value) fired."""
    settings = settings or AlertsSection(cooldown_s=0)
    rules = build_rules(settings, profile or AlertThresholds(), lambda: zones or SpeedZones(None))
    history = signal_history(settings)
    fired = []
    for signal_id, at_ms, value in sorted(samples, key=lambda s: s[1]):
        if history.add(signal_id, T0 + at_ms, value):
            for firing in rules.evaluate(history, signal_id):
                fired.append((firing.rule.name, firing.time_ms - T0, firing.measure.value))
    return fired


def _series(signal_id: int, values: list[float], every_ms: int = 200, start_ms: int = 0):
    return [(signal_id, start_ms + i * every_ms, v) for i, v in enumerate(values)]


def test_obd_only_speed_drop_of_20_kmh_per_second_is_one_harsh_brake() -> None:
    cruise = [60.0] * 10
    braking = [60.0 - 4.0 * i for i in range(1, 11)]  # 20 km/h per second for 2 s
    stopped = [20.0] * 10
    fired = _run(_series(SPEED, cruise + braking + stopped))
    assert [name for name, _, _ in fired] == ["harsh_brake"]
    assert 4.0 < fired[0][2] <= 5.6  # at most 20 km/h/s = 5.56 m/s²
    assert 2_000 < fired[0][1] <= 4_000  # while braking


def test_gentle_braking_and_steady_speed_fire_nothing() -> None:
    gentle = [60.0 - 1.0 * i for i in range(40)]  # 5 km/h per second: 1.4 m/s²
    assert _run(_series(SPEED, gentle)) == []


def test_can_accelerometer_is_read_instead_of_the_speed_slope() -> None:
    speed = _series(SPEED, [50.0] * 20)  # the speed says nothing happens
    accel = _series(ACCEL_LONGITUDINAL, [0.0] * 5 + [4.6] * 3 + [0.0] * 5, start_ms=100)
    assert [name for name, _, _ in _run(speed + accel)] == ["harsh_accel"]


def test_cornering_from_lateral_acceleration_or_yaw_rate_times_speed() -> None:
    lateral = _series(ACCEL_LATERAL, [0.5, -4.8, -4.9, 0.2])
    assert [n for n, _, _ in _run(lateral)] == ["harsh_corner"]
    # 30 °/s at 36 km/h (10 m/s): 5.2 m/s² sideways.
    yaw = _series(SPEED, [36.0] * 6) + _series(YAW_RATE, [0.0, 30.0, 30.0, 0.0], start_ms=50)
    assert [n for n, _, _ in _run(yaw)] == ["harsh_corner"]


def test_speeding_uses_the_speed_zone_at_the_gps_position_before_the_default_limit() -> None:
    zone = DeviceFence(
        id=uuid.uuid4(),
        name="school",
        kind="polygon",
        coordinates=[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]],
        speed_limit_kmh=30.0,
    )
    zones = SpeedZones(GeofenceSet(device_id="d", version=1, fences=[zone]))
    settings = AlertsSection(cooldown_s=0, speed_limit_kmh=100.0)
    inside = [(LATITUDE, 0, 52.05), (LONGITUDE, 0, 13.05)]
    outside = [(LATITUDE, 0, 51.0), (LONGITUDE, 0, 13.05)]
    at_45 = _series(SPEED, [45.0] * 5, start_ms=10)
    assert [n for n, _, _ in _run(inside + at_45, settings, zones=zones)] == ["speeding"]
    assert _run(outside + at_45, settings, zones=zones) == []
    # No limit anywhere: no speeding rule can fire, whatever the speed.
    fast = _series(SPEED, [250.0] * 5, start_ms=10)
    assert _run(fast, AlertsSection(cooldown_s=0)) == []


def test_idling_fires_once_after_the_profile_minutes() -> None:
    profile = load_profile("fleetlink-sim-car").alerts  # idle_minutes = 5
    minutes = 7
    samples = _series(RPM, [800.0] * (minutes * 60), every_ms=1000) + _series(
        SPEED, [0.0] * (minutes * 60), every_ms=1000, start_ms=10
    )
    fired = _run(samples, profile=profile)
    assert [n for n, _, _ in fired] == ["idling"]
    assert 5 * 60_000 < fired[0][1] < 5 * 60_000 + 2_000


def test_coolant_overheat_fires_again_only_after_cooling_past_the_hysteresis() -> None:
    values = [100, 111, 112, 108, 111, 104, 112]  # 108: still hot; 104: below 110 - 5
    fired = _run(_series(COOLANT, [float(v) for v in values]))
    assert [ms for _, ms, _ in fired] == [200, 1200]


def test_low_battery_only_with_the_engine_off() -> None:
    running = _series(RPM, [800.0] * 5) + _series(BATTERY, [11.2] * 5, start_ms=10)
    assert _run(running) == []
    off = _series(BATTERY, [12.4, 11.9, 11.5, 11.4])
    assert [n for n, _, _ in _run(off)] == ["low_battery"]


def test_dm1_fault_fires_for_each_new_spn() -> None:
    spns = [0.0, 110.0, 110.0, 110.0, 0.0, 110.0, 190.0]
    fired = _run(_series(DM1_SPN, spns))
    assert [ms for _, ms, _ in fired] == [200, 1200]  # 110 once (seen), then 190


def test_fuel_drop_ignores_slosh_but_not_a_leak() -> None:
    slosh = [50.0, 50.0, 38.0, 50.0, 49.8, 49.9, 49.7]
    assert _run(_series(FUEL_LEVEL, slosh, every_ms=2000)) == []
    leak = [50.0, 50.0, 49.0, 45.0, 41.0, 38.0, 37.0, 36.0]
    assert [n for n, _, _ in _run(_series(FUEL_LEVEL, leak, every_ms=5000))] == ["fuel_drop"]


def test_nan_and_infinite_values_are_never_kept_and_never_fire() -> None:
    history = SignalHistory()
    assert not history.add(COOLANT, T0, math.nan)
    assert not history.add(COOLANT, T0, math.inf)
    assert history.latest(COOLANT) is None
    assert _run(_series(COOLANT, [math.nan, 130.0 * math.inf, math.nan])) == []


def test_a_rule_disabled_in_the_device_config_never_fires_and_its_threshold_wins() -> None:
    hot = _series(COOLANT, [95.0, 101.0])
    off = AlertsSection(rules={"coolant_overheat": RuleSettings(enabled=False)})
    assert _run(hot, off) == []
    lower = AlertsSection(rules={"coolant_overheat": RuleSettings(threshold=100.0)})
    profile = AlertThresholds(coolant_overheat_c=120.0)
    assert [n for n, _, _ in _run(hot, lower, profile)] == ["coolant_overheat"]


def test_a_stale_signal_is_not_current() -> None:
    history = SignalHistory()
    history.add(COOLANT, T0, 120.0)
    history.add(SPEED, T0 + 6_000, 10.0)
    assert history.latest(COOLANT) is None
    assert history.latest(SPEED) == 10.0


THRESHOLD, HYSTERESIS, COOLDOWN_MS = 10.0, 2.0, 5_000
readings = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=3_000),
        st.one_of(st.floats(min_value=0, max_value=20), st.just(math.nan)),
    ),
    max_size=200,
)


@given(readings)
def test_gate_fires_at_most_once_per_crossing_and_never_within_the_cooldown(steps) -> None:
    gate = Gate(THRESHOLD, HYSTERESIS, COOLDOWN_MS)
    now, fired, rearmed_since_fire = 0, [], True
    for step_ms, value in steps:
        now += step_ms
        if gate.update(value, now):
            assert rearmed_since_fire, "fired twice without falling below the hysteresis band"
            assert not math.isnan(value) and value > THRESHOLD
            fired.append(now)
            rearmed_since_fire = False
        elif value <= THRESHOLD - HYSTERESIS:
            rearmed_since_fire = True
    assert all(b - a >= COOLDOWN_MS for a, b in itertools.pairwise(fired))


@given(st.lists(st.floats(min_value=THRESHOLD - HYSTERESIS + 0.01, max_value=20), max_size=100))
def test_gate_oscillating_inside_the_hysteresis_band_fires_at_most_once(values) -> None:
    gate = Gate(THRESHOLD, HYSTERESIS, cooldown_ms=0)
    assert sum(gate.update(v, i * 1000) for i, v in enumerate(values)) <= 1


@given(st.lists(st.floats(allow_nan=True), max_size=50))
def test_gate_given_only_nan_never_fires(values) -> None:
    gate = Gate(THRESHOLD, HYSTERESIS, COOLDOWN_MS)
    assert not any(gate.update(math.nan, i) for i in range(len(values)))


def _simulated_drive(
    style: float, seed: int, minutes: float, overheat_after_min: float | None = None
) -> dict[str, int]:
    """Drive the simulator's car (no adapter: its physics directly), read speed, rpm and
    coolant at about 3 Hz as whole numbers the way OBD reports them, and count what fires
    under the sim car's profile limits."""
    from collections import Counter

    from fleetlink.simulator.driver import Driver
    from fleetlink.simulator.vehicle import Vehicle

    vehicle, driver = Vehicle(seed), Driver(style, seed)
    vehicle.set_ignition(True)
    rules = build_rules(
        AlertsSection(), load_profile("fleetlink-sim-car").alerts, lambda: SpeedZones(None)
    )
    history, fired = signal_history(AlertsSection()), Counter[str]()
    for tick in range(int(minutes * 600)):
        if overheat_after_min is not None and tick == int(overheat_after_min * 600):
            vehicle.inject_overheat(15.0)
        pedals = driver.step(0.1, vehicle.snapshot())
        vehicle.set_pedals(pedals.accelerator_pct, pedals.brake_pct)
        state = vehicle.step(0.1)
        if tick % 3:
            continue
        readings = ((SPEED, state.speed_kmh), (RPM, state.rpm), (COOLANT, state.coolant_temp_c))
        for signal_id, value in readings:
            history.add(signal_id, T0 + tick * 100, float(round(value)))
            fired.update(f.rule.name for f in rules.evaluate(history, signal_id))
    return dict(fired)


def test_simulated_calm_drive_raises_nothing_and_an_aggressive_one_brakes_harshly() -> None:
    assert _simulated_drive(style=0.1, seed=1, minutes=15) == {}
    assert _simulated_drive(style=0.9, seed=1, minutes=15).get("harsh_brake", 0) >= 1


def test_simulated_cooling_failure_raises_one_overheat_alert() -> None:
    fired = _simulated_drive(style=0.1, seed=2, minutes=6, overheat_after_min=4)
    assert fired == {"coolant_overheat": 1}
