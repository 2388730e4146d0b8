"""A deterministic model of a petrol car: powertrain, temperatures, fuel, battery, GPS and DTCs.

The driver (or a test) sets the pedals and the ignition; ``step(dt_s)`` advances the physics.
Every derived quantity comes from the same few states (speed, gear, pedal, temperatures), so
the signals agree with one another: rpm follows speed and gear, MAF follows rpm and manifold
pressure, load follows MAF, fuel rate follows MAF, the coolant warms with the fuel burnt.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, replace

from fleetlink.simulator.readiness import RESET_BY_CLEAR
from fleetlink.simulator.route import Route
from fleetlink.simulator.vin import InvalidVinError, is_valid_vin, random_vin
from fleetlink.simulator.wear import WearState

_MASS_KG = 1450.0
_DRAG_N_PER_MPS2 = 0.5 * 1.2 * 0.30 * 2.2  # rho * Cd * frontal area / 2
_ROLLING_N = 0.012 * _MASS_KG * 9.81
_MAX_TRACTION_N = 5500.0
_MAX_POWER_W = 110_000.0
_MAX_BRAKE_N = 0.8 * _MASS_KG * 9.81
_ENGINE_BRAKE_N = 350.0
_WHEEL_RADIUS_M = 0.31
_FINAL_DRIVE = 3.9
_GEAR_RATIOS = (3.5, 2.1, 1.4, 1.0, 0.8, 0.65)
_REDLINE_RPM = 6200.0
_DISPLACEMENT_L = 2.0
_VOLUMETRIC_EFFICIENCY = 0.85
_AIR_DENSITY_STP_G_PER_L = 1.184
_STOICHIOMETRIC_AFR = 14.7
_PETROL_G_PER_L = 745.0
_TANK_L = 55.0
_THERMOSTAT_C = 90.0
_REFERENCE_TORQUE_NM = 200
_DTC_MATURATION_KM = 3.0


def rpm_per_kmh(gear: int) -> float:
    """Return engine rpm per km/h of road speed in ``gear`` (1-6) with the converter locked."""
    wheel_rpm_per_kmh = (1000.0 / 3600.0) / (2 * math.pi * _WHEEL_RADIUS_M) * 60.0
    return wheel_rpm_per_kmh * _GEAR_RATIOS[gear - 1] * _FINAL_DRIVE


@dataclass(frozen=True, slots=True)
class VehicleState:
    """Everything an observer can read from the vehicle at one instant."""

    time_s: float
    vin: str
    ignition_on: bool
    engine_running: bool
    speed_kmh: float
    acceleration_mps2: float
    rpm: float
    gear: int
    accelerator_pct: float
    brake_pct: float
    throttle_pct: float
    engine_load_pct: float
    absolute_load_pct: float
    intake_pressure_kpa: float
    barometric_pressure_kpa: float
    maf_gs: float
    equivalence_ratio: float
    fuel_rate_lph: float
    fuel_pressure_kpa: float
    fuel_level_pct: float
    short_fuel_trim_pct: tuple[float, float]
    long_fuel_trim_pct: tuple[float, float]
    timing_advance_deg: float
    commanded_egr_pct: float
    evap_purge_pct: float
    coolant_temp_c: float
    oil_temp_c: float
    intake_temp_c: float
    ambient_temp_c: float
    catalyst_temp_c: float
    battery_v: float
    control_module_v: float
    engine_torque_pct: float
    odometer_km: float
    engine_hours: float
    run_time_s: float
    latitude: float
    longitude: float
    heading_deg: float
    stored_dtcs: tuple[str, ...]
    pending_dtcs: tuple[str, ...]
    permanent_dtcs: tuple[str, ...]
    distance_with_mil_km: float
    time_with_mil_min: float
    distance_since_clear_km: float
    time_since_clear_min: float
    warmups_since_clear: int
    # The monitors that have not run since the codes were last cleared (names as in
    # simulator.readiness), and the state captured when the first stored code was set.
    incomplete_monitors: frozenset[str] = frozenset()
    freeze_frame: VehicleState | None = None
    freeze_frame_dtc: str | None = None

    @property
    def mil_on(self) -> bool:
        """Return True when the malfunction indicator lamp is lit (a stored DTC exists)."""
        return bool(self.stored_dtcs)


def _with_stored(s: VehicleState, code: str) -> VehicleState:
    """Return ``s`` with ``code`` stored; the first stored code freezes the frame."""
    if code in s.stored_dtcs:
        return s
    if s.stored_dtcs and s.freeze_frame is not None:
        return replace(s, stored_dtcs=(*s.stored_dtcs, code))
    frame = replace(s, freeze_frame=None, freeze_frame_dtc=None)
    return replace(s, stored_dtcs=(*s.stored_dtcs, code), freeze_frame=frame, freeze_frame_dtc=code)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _approach(current: float, target: float, dt_s: float, tau_s: float) -> float:
    """First-order lag: move ``current`` towards ``target`` with time constant ``tau_s``."""
    return target + (current - target) * math.exp(-dt_s / tau_s)


class Vehicle:
    """A thread-safe vehicle model; all randomness comes from ``seed``.

    Raises InvalidVinError when ``vin`` is given and is not a valid VIN.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        vin: str | None = None,
        route: Route | None = None,
        ambient_temp_c: float | None = None,
        fuel_level_pct: float | None = None,
        odometer_km: float | None = None,
        stored_dtcs: tuple[str, ...] | None = None,
        pending_dtcs: tuple[str, ...] | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        if vin is not None and not is_valid_vin(vin):
            raise InvalidVinError(f"{vin!r} is not a valid VIN (length, letters or check digit)")
        self._lock = threading.Lock()
        self._wear = WearState()
        self._route = route or Route()
        rng = self._rng
        ambient = ambient_temp_c if ambient_temp_c is not None else rng.uniform(5.0, 25.0)
        if pending_dtcs is None:
            # Some seeds start with a developing fault, so demos show a DTC appearing.
            pending_dtcs = ("P0171",) if rng.random() < 0.3 else ()
        route_offset_m = rng.uniform(0.0, self._route.length_m)
        position = self._route.position_at(route_offset_m)
        self._maturing_km = {code: _DTC_MATURATION_KM for code in pending_dtcs}
        self._route_offset_m = route_offset_m
        self._distance_m = 0.0
        self._engine_off_s = 3600.0
        self._drain_v_per_s = 0.0
        self._overheat_c_per_s = 0.0
        self._drained_v = 0.0
        self._warmup_armed = False
        self._state = VehicleState(
            time_s=0.0,
            vin=(vin or random_vin(rng)).upper(),
            ignition_on=False,
            engine_running=False,
            speed_kmh=0.0,
            acceleration_mps2=0.0,
            rpm=0.0,
            gear=0,
            accelerator_pct=0.0,
            brake_pct=0.0,
            throttle_pct=0.0,
            engine_load_pct=0.0,
            absolute_load_pct=0.0,
            intake_pressure_kpa=101.0,
            barometric_pressure_kpa=101.0,
            maf_gs=0.0,
            equivalence_ratio=1.0,
            fuel_rate_lph=0.0,
            fuel_pressure_kpa=0.0,
            fuel_level_pct=(
                fuel_level_pct if fuel_level_pct is not None else rng.uniform(35.0, 95.0)
            ),
            short_fuel_trim_pct=(0.0, 0.0),
            long_fuel_trim_pct=(rng.uniform(-4.0, 4.0), rng.uniform(-4.0, 4.0)),
            timing_advance_deg=0.0,
            commanded_egr_pct=0.0,
            evap_purge_pct=0.0,
            coolant_temp_c=ambient,
            oil_temp_c=ambient,
            intake_temp_c=ambient,
            ambient_temp_c=ambient,
            catalyst_temp_c=ambient,
            battery_v=12.4,
            control_module_v=12.3,
            engine_torque_pct=0.0,
            odometer_km=odometer_km if odometer_km is not None else rng.uniform(5_000, 180_000),
            engine_hours=0.0,
            run_time_s=0.0,
            latitude=position.latitude,
            longitude=position.longitude,
            heading_deg=position.heading_deg,
            stored_dtcs=tuple(stored_dtcs or ()),
            pending_dtcs=tuple(pending_dtcs),
            permanent_dtcs=tuple(stored_dtcs or ()),
            distance_with_mil_km=0.0,
            time_with_mil_min=0.0,
            distance_since_clear_km=rng.uniform(100.0, 3000.0),
            time_since_clear_min=rng.uniform(200.0, 5000.0),
            warmups_since_clear=rng.randrange(5, 120),
        )
        self._state = replace(self._state, engine_hours=self._state.odometer_km / 38.0)

    @property
    def vin(self) -> str:
        """Return the vehicle's VIN."""
        return self._state.vin

    def snapshot(self) -> VehicleState:
        """Return the current state (an immutable copy, safe to keep and share)."""
        with self._lock:
            return self._state

    def set_ignition(self, on: bool) -> None:
        """Turn the ignition (and with it the engine) on or off."""
        with self._lock:
            s = self._state
            if on == s.ignition_on:
                return
            if on:
                self._warmup_armed = s.coolant_temp_c < 50.0
                self._state = replace(s, ignition_on=True, engine_running=True, run_time_s=0.0)
            else:
                self._engine_off_s = 0.0
                self._state = replace(s, ignition_on=False, engine_running=False)

    def set_battery_drain(self, volts_per_s: float) -> None:
        """Drain the battery by ``volts_per_s`` while the engine is off (a parasitic load, or a
        test that wants the voltage to fall fast); 0 stops draining. A running engine recharges.

        Raises ValueError when ``volts_per_s`` is negative.
        """
        if volts_per_s < 0:
            raise ValueError(f"volts_per_s must be >= 0, got {volts_per_s}")
        with self._lock:
            self._drain_v_per_s = volts_per_s

    def inject_overheat(self, heat_c_per_s: float) -> None:
        """Add ``heat_c_per_s`` of heat the cooling cannot shed while the engine runs (a dead
        fan or water pump): the coolant settles about ``heat_c_per_s / 0.6`` °C above the
        thermostat; 0 repairs it and the radiator cools the engine back within seconds.

        Raises ValueError when ``heat_c_per_s`` is negative.
        """
        if heat_c_per_s < 0:
            raise ValueError(f"heat_c_per_s must be >= 0, got {heat_c_per_s}")
        with self._lock:
            self._overheat_c_per_s = heat_c_per_s

    def set_wear(self, wear: WearState) -> None:
        """Apply worn parts (see :mod:`fleetlink.simulator.wear`) from the next step on."""
        with self._lock:
            self._wear = wear

    def set_pedals(self, accelerator_pct: float, brake_pct: float) -> None:
        """Set the accelerator and brake pedal positions (each clamped to 0-100 %)."""
        with self._lock:
            self._state = replace(
                self._state,
                accelerator_pct=_clamp(accelerator_pct, 0.0, 100.0),
                brake_pct=_clamp(brake_pct, 0.0, 100.0),
            )

    def add_dtc(self, code: str, *, pending: bool = False, permanent_only: bool = False) -> None:
        """Record a trouble code as stored (MIL on, also permanent) or, with ``pending``, as
        pending only, or with ``permanent_only`` as a permanent code whose stored copy was
        cleared (it stays until the ECU's monitor passes).

        The first stored code captures the freeze frame (the state at this moment).
        """
        code = code.upper()
        with self._lock:
            s = self._state
            if pending:
                if code not in s.pending_dtcs:
                    self._state = replace(s, pending_dtcs=(*s.pending_dtcs, code))
                return
            permanent = s.permanent_dtcs if code in s.permanent_dtcs else (*s.permanent_dtcs, code)
            if permanent_only:
                self._state = replace(s, permanent_dtcs=permanent)
                return
            self._state = _with_stored(replace(s, permanent_dtcs=permanent), code)

    def set_incomplete_monitors(self, names: frozenset[str]) -> None:
        """Mark the readiness monitors ``names`` (see simulator.readiness) as not yet run."""
        with self._lock:
            self._state = replace(self._state, incomplete_monitors=frozenset(names))

    def clear_dtcs(self) -> None:
        """Clear stored and pending codes and their counters, as OBD mode 04 does.

        Permanent codes stay: only the ECU's own monitors may erase them. The freeze frame is
        erased and every non-continuous readiness monitor has to run again.
        """
        with self._lock:
            self._maturing_km.clear()
            self._state = replace(
                self._state,
                stored_dtcs=(),
                pending_dtcs=(),
                freeze_frame=None,
                freeze_frame_dtc=None,
                incomplete_monitors=RESET_BY_CLEAR,
                distance_with_mil_km=0.0,
                time_with_mil_min=0.0,
                distance_since_clear_km=0.0,
                time_since_clear_min=0.0,
                warmups_since_clear=0,
            )

    def step(self, dt_s: float) -> VehicleState:
        """Advance the physics by ``dt_s`` seconds and return the new state.

        Raises ValueError when ``dt_s`` is negative.
        """
        if dt_s < 0:
            raise ValueError(f"dt_s must be >= 0, got {dt_s}")
        with self._lock:
            if dt_s > 0:
                self._state = self._advance(self._state, dt_s)
            return self._state

    def _advance(self, s: VehicleState, dt: float) -> VehicleState:
        rng = self._rng
        running = s.engine_running
        pedal = s.accelerator_pct if running else 0.0
        v_mps = s.speed_kmh / 3.6

        # Longitudinal dynamics.
        drive_n = pedal / 100.0 * min(_MAX_TRACTION_N, _MAX_POWER_W / max(v_mps, 1.0))
        resist_n = _DRAG_N_PER_MPS2 * v_mps**2 + (_ROLLING_N if v_mps > 0 else 0.0)
        if running and pedal < 1.0 and v_mps > 2.0:
            resist_n += _ENGINE_BRAKE_N
        resist_n += s.brake_pct / 100.0 * _MAX_BRAKE_N
        accel = (drive_n - resist_n) / _MASS_KG
        new_v = max(0.0, v_mps + accel * dt)
        accel = (new_v - v_mps) / dt
        speed_kmh = new_v * 3.6
        travelled_m = (v_mps + new_v) / 2.0 * dt

        # Engine and gearbox.
        idle_rpm = 750.0 + 350.0 * _clamp((60.0 - s.coolant_temp_c) / 60.0, 0.0, 1.0)
        if running:
            gear = self._select_gear(speed_kmh, pedal)
            converter_rpm = idle_rpm + 14.0 * pedal
            target_rpm = min(_REDLINE_RPM, max(converter_rpm, speed_kmh * rpm_per_kmh(gear)))
            rpm = _approach(s.rpm, target_rpm, dt, 0.25) + rng.gauss(0.0, 4.0)
            if self._wear.misfire > 0:
                # Each missed firing stalls the crankshaft for an instant: the idle turns rough.
                rpm -= abs(rng.gauss(0.0, 220.0 * self._wear.misfire))
            rpm = _clamp(rpm, 0.6 * idle_rpm, _REDLINE_RPM)
        else:
            gear = 0
            rpm = _approach(s.rpm, 0.0, dt, 0.2)
            rpm = 0.0 if rpm < 50.0 else rpm

        # Air path: manifold pressure from the throttle, MAF from rpm and charge density.
        baro = s.barometric_pressure_kpa
        fuel_cut = running and pedal < 1.0 and rpm > 1300.0 and speed_kmh > 15.0
        if running:
            throttle = 6.0 + 0.86 * pedal + rng.gauss(0.0, 0.2)
            map_kpa = baro * (0.20 if fuel_cut else 0.30 + 0.68 * (pedal / 100.0) ** 0.9)
            # A clogged filter costs more pressure the more air the engine asks for.
            map_kpa *= 1.0 - self._wear.air_restriction * pedal / 100.0
        else:
            throttle = 0.0
            map_kpa = baro
        intake_k = s.intake_temp_c + 273.15
        charge_g_per_l = map_kpa * 1000.0 / (287.05 * intake_k)
        air_l_per_s = rpm / 120.0 * _DISPLACEMENT_L if running else 0.0
        maf = air_l_per_s * _VOLUMETRIC_EFFICIENCY * charge_g_per_l
        peak_maf = rpm / 120.0 * _DISPLACEMENT_L * _AIR_DENSITY_STP_G_PER_L
        absolute_load = 100.0 * maf / peak_maf if running and peak_maf > 0 else 0.0
        load = _clamp(absolute_load / _VOLUMETRIC_EFFICIENCY, 0.0, 100.0) if running else 0.0
        torque_pct = _clamp(load * 0.95 - 8.0, 0.0, 100.0) if running and not fuel_cut else 0.0

        # Fuel.
        equivalence = 0.88 if pedal > 85.0 else 1.0
        short_trims = tuple(
            _clamp(t * 0.9 + rng.gauss(0.0, 0.8), -10.0, 10.0) if running else 0.0
            for t in s.short_fuel_trim_pct
        )
        fuel_gs = maf / (_STOICHIOMETRIC_AFR * equivalence) if running and not fuel_cut else 0.0
        fuel_lph = fuel_gs * 3600.0 / _PETROL_G_PER_L
        fuel_level = max(0.0, s.fuel_level_pct - fuel_lph * dt / 3600.0 / _TANK_L * 100.0)

        # Temperatures.
        ambient = s.ambient_temp_c
        heating = 0.35 * fuel_gs + (self._overheat_c_per_s if running else 0.0)
        radiator = (
            (1.0 - self._wear.cooling_loss) * 0.6 * max(0.0, s.coolant_temp_c - _THERMOSTAT_C)
        )
        # A closed thermostat keeps a running engine's heat in; a stopped engine cools faster.
        losses = (0.0006 if running else 0.0012) * (s.coolant_temp_c - ambient)
        coolant = s.coolant_temp_c + dt * (heating - radiator - losses)
        oil = _approach(s.oil_temp_c, coolant + (6.0 if running else 0.0), dt, 240.0)
        heat_soak = 18.0 * _clamp((coolant - ambient) / 70.0, 0.0, 1.0) / (1.0 + speed_kmh / 25.0)
        intake = _approach(s.intake_temp_c, ambient + 2.0 + heat_soak, dt, 30.0)
        catalyst_target = 280.0 + 5.0 * load + 0.5 * speed_kmh if running else ambient
        catalyst = _approach(s.catalyst_temp_c, catalyst_target, dt, 90.0)

        # Electrics.
        if running:
            self._engine_off_s = 0.0
            self._drained_v = 0.0
            battery = 14.2 - 0.25 * _clamp(1.0 - rpm / 1500.0, 0.0, 1.0) + rng.gauss(0.0, 0.01)
            battery -= self._wear.charging_loss_v
        else:
            self._engine_off_s += dt
            self._drained_v = min(12.0, self._drained_v + self._drain_v_per_s * dt)
            battery = 12.4 + 0.3 * math.exp(-self._engine_off_s / 600.0) + rng.gauss(0.0, 0.005)
            battery -= self._drained_v
        battery += self._wear.battery_offset_v

        # Odometer, clocks and position.
        km = travelled_m / 1000.0
        self._distance_m += travelled_m
        position = self._route.position_at(self._route_offset_m + self._distance_m)
        stored, pending, permanent = s.stored_dtcs, s.pending_dtcs, s.permanent_dtcs
        freeze = (s.freeze_frame, s.freeze_frame_dtc)
        for code in list(self._maturing_km):
            self._maturing_km[code] -= km
            if self._maturing_km[code] <= 0:
                del self._maturing_km[code]
                if code not in stored:
                    matured = _with_stored(
                        replace(
                            s,
                            stored_dtcs=stored,
                            freeze_frame=freeze[0],
                            freeze_frame_dtc=freeze[1],
                        ),
                        code,
                    )
                    stored = matured.stored_dtcs
                    freeze = (matured.freeze_frame, matured.freeze_frame_dtc)
                    permanent = (*permanent, code)
        warmups = s.warmups_since_clear
        if self._warmup_armed and coolant >= 70.0:
            self._warmup_armed = False
            warmups += 1
        run_min = dt / 60.0 if running else 0.0

        return replace(
            s,
            time_s=s.time_s + dt,
            speed_kmh=speed_kmh,
            acceleration_mps2=accel,
            rpm=rpm,
            gear=gear,
            throttle_pct=_clamp(throttle, 0.0, 100.0),
            engine_load_pct=load,
            absolute_load_pct=absolute_load,
            intake_pressure_kpa=map_kpa,
            maf_gs=maf,
            equivalence_ratio=equivalence,
            fuel_rate_lph=fuel_lph,
            fuel_pressure_kpa=380.0 + rng.gauss(0.0, 3.0) if running else 0.0,
            fuel_level_pct=fuel_level,
            short_fuel_trim_pct=(short_trims[0], short_trims[1]),
            timing_advance_deg=(
                _clamp(8.0 + 22.0 * min(rpm, 4000.0) / 4000.0 - 14.0 * load / 100.0, -5.0, 45.0)
                if running
                else 0.0
            ),
            commanded_egr_pct=(12.0 if running and coolant > 60.0 and 10.0 < pedal < 60.0 else 0.0),
            evap_purge_pct=20.0 if running and coolant > 70.0 and not fuel_cut else 0.0,
            coolant_temp_c=coolant,
            oil_temp_c=oil,
            intake_temp_c=intake,
            catalyst_temp_c=catalyst,
            battery_v=battery,
            control_module_v=battery - 0.1,
            engine_torque_pct=torque_pct,
            odometer_km=s.odometer_km + km,
            engine_hours=s.engine_hours + (dt / 3600.0 if running else 0.0),
            run_time_s=s.run_time_s + (dt if running else 0.0),
            latitude=position.latitude,
            longitude=position.longitude,
            heading_deg=position.heading_deg if travelled_m > 0 else s.heading_deg,
            stored_dtcs=stored,
            pending_dtcs=pending,
            permanent_dtcs=permanent,
            distance_with_mil_km=s.distance_with_mil_km + (km if stored else 0.0),
            time_with_mil_min=s.time_with_mil_min + (run_min if stored else 0.0),
            distance_since_clear_km=s.distance_since_clear_km + km,
            time_since_clear_min=s.time_since_clear_min + run_min,
            warmups_since_clear=warmups,
            freeze_frame=freeze[0],
            freeze_frame_dtc=freeze[1] if freeze[0] is not None else None,
        )

    @staticmethod
    def _select_gear(speed_kmh: float, pedal: float) -> int:
        """Pick the highest gear that keeps rpm above a pedal-dependent floor (kickdown)."""
        floor_rpm = 1250.0 + 1800.0 * pedal / 100.0
        for gear in range(len(_GEAR_RATIOS), 0, -1):
            if speed_kmh * rpm_per_kmh(gear) >= floor_rpm:
                return gear
        return 1
