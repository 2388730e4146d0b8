"""The firmware profile format: what the agent reads from one vehicle platform.

A profile is a TOML file in this package, validated by :class:`Profile` on load. Format 1
holds the match rules, the OBD poll groups and per-PID rates with priorities, and the OBD
adapter's settings (:class:`ObdAdapter`). Format 2 adds optional sections: ``[can]`` (the bus,
its DBC files and the DBC signal → VSS mapping), ``[alerts]`` (the thresholds the in-cab alert
rules read) and ``[[models]]`` (on-device models); a format 2 profile may leave out ``[obd]``
(a J1939 truck is read from its CAN bus only). Format 1 files still load.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetlink.firmware_profiles.transform import TransformError, compile_math
from fleetlink.shared.signals import UnknownSignalError, by_name, by_obd_command

PROFILE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Priority = Literal["high", "normal", "low"]

# ELM327 protocol numbers (ATSP) and the names the ELM327 prints for them (ATDP).
OBD_PROTOCOLS: dict[str, str] = {
    "1": "SAE J1850 PWM",
    "2": "SAE J1850 VPW",
    "3": "ISO 9141-2",
    "4": "ISO 14230-4 (KWP 5BAUD)",
    "5": "ISO 14230-4 (KWP FAST)",
    "6": "ISO 15765-4 (CAN 11/500)",
    "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)",
    "9": "ISO 15765-4 (CAN 29/250)",
    "A": "SAE J1939 (CAN 29/250)",
}


def protocol_id(value: str) -> str:
    """Return the ELM327 protocol number for ``value``: a number ("6", "a") or a name as the
    ELM327 prints it ("ISO 15765-4 (CAN 11/500)"), case-insensitive.

    Raises:
        ValueError: neither a protocol number nor a protocol name.
    """
    upper = value.strip().upper()
    if upper in OBD_PROTOCOLS:
        return upper
    for number, name in OBD_PROTOCOLS.items():
        if upper == name.upper():
            return number
    raise ValueError(
        f"{value!r} is not an OBD protocol: use a number 1-9 or A, or a name such as "
        f"{OBD_PROTOCOLS['6']!r}"
    )


def _known_command(name: str) -> str:
    try:
        by_obd_command(name)
    except UnknownSignalError:
        raise ValueError(f"{name!r} is not an OBD command in the signal catalog") from None
    return name


class PollGroup(_Strict):
    """OBD commands (python-obd names, all in the signal catalog) read at one rate."""

    commands: Annotated[list[str], Field(min_length=1)]
    rate_hz: float
    priority: Priority = "normal"

    @field_validator("rate_hz")
    @classmethod
    def _positive_rate(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be > 0")
        return value

    @field_validator("commands")
    @classmethod
    def _known_commands(cls, value: list[str]) -> list[str]:
        for name in value:
            _known_command(name)
        return value


class PidRate(_Strict):
    """One OBD command read at its own rate; ``high`` ones are read first when PIDs fall due
    together or the bus cannot keep up."""

    command: str
    rate_hz: Annotated[float, Field(gt=0, le=100)]
    priority: Priority = "normal"

    @field_validator("command")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_command(value)


class ElmTiming(_Strict):
    """ELM327 response timing the agent asks for; an adapter that answers ``?`` keeps its own.

    ``adaptive`` is ATAT (0 off, 1 the chip's default, 2 aggressive); ``timeout_ms`` is ATST
    (the wait for an ECU's reply, 4 ms steps up to 1020 ms); None: derive it from the ECU's
    measured response time at connect.
    """

    adaptive: Literal[0, 1, 2] = 2
    timeout_ms: Annotated[int, Field(ge=4, le=1020)] | None = None


class ObdAdapter(_Strict):
    """The OBD adapter's settings for this platform; the device configuration may override."""

    protocol: str | None = Field(default=None, description="ELM327 protocol number or name")
    baudrate: Annotated[int, Field(gt=0)] | None = None
    timing: ElmTiming = Field(default_factory=ElmTiming)
    max_pids_per_request: Annotated[int, Field(ge=1, le=6)] = 6

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str | None) -> str | None:
        return None if value is None else protocol_id(value)


class Match(_Strict):
    """Which vehicles a profile is for; an empty match is a fallback for any vehicle."""

    wmi: list[Annotated[str, Field(pattern=r"^[A-HJ-NPR-Z0-9]{3}$")]] = Field(
        default_factory=list, description="VIN world manufacturer identifiers (first 3 characters)"
    )
    makes: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    years: tuple[int, int] | None = None
    protocols: list[str] = Field(
        default_factory=list, description="OBD protocols (ELM327 numbers or names)"
    )

    @field_validator("protocols")
    @classmethod
    def _protocol_ids(cls, value: list[str]) -> list[str]:
        return [protocol_id(v) for v in value]

    @field_validator("years")
    @classmethod
    def _ordered_years(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1980 <= value[0] <= value[1] <= 2100:
            raise ValueError("must be [first, last] model years between 1980 and 2100")
        return value

    @property
    def is_fallback(self) -> bool:
        return not (self.wmi or self.makes or self.models or self.years or self.protocols)


class ObdbSignalsets(_Strict):
    """OBDb signalsets whose mode 22 commands the agent polls beside the mode 01 PIDs.

    ``signalsets`` names OBDb vehicle folders, most specific first (``["Chevrolet-Bolt-EV",
    "Chevrolet"]``); each is read from ``<obdb_dir>/<name>/signalsets/v3/default.json`` on the
    device (the installer puts them there; the data is share-alike and not shipped).
    ``model_year`` selects the signalsets' model-year variants (default: from the VIN).
    """

    signalsets: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]] = Field(
        min_length=1
    )
    model_year: Annotated[int, Field(ge=1980, le=2100)] | None = None


class ObdProfile(_Strict):
    """What to poll over OBD: groups sharing a rate, and/or single PIDs with their own, and
    the OBDb signalsets of manufacturer PIDs."""

    poll: list[PollGroup] = Field(default_factory=list)
    pids: list[PidRate] = Field(default_factory=list)
    adapter: ObdAdapter = Field(default_factory=ObdAdapter)
    obdb: ObdbSignalsets | None = None

    @model_validator(mode="after")
    def _something_to_poll(self) -> ObdProfile:
        if not self.poll and not self.pids:
            raise ValueError("needs at least one [[obd.poll]] group or [[obd.pids]] entry")
        return self

    def schedule(self) -> list[PidRate]:
        """Return every command to poll with its rate and priority, groups first."""
        rates = [
            PidRate(command=c, rate_hz=g.rate_hz, priority=g.priority)
            for g in self.poll
            for c in g.commands
        ]
        return rates + list(self.pids)


class Transform(_Strict):
    """How a decoded DBC value becomes the catalog signal's value: one of ``math`` or ``mapping``.

    ``math`` is an expression in ``x`` (``"x * 3.6"``); ``mapping`` turns a raw value, given
    as a number or as the DBC's name for it (``"DRIVE"``), into a number.
    """

    math: str | None = None
    mapping: dict[str, float] | None = None

    @field_validator("math")
    @classmethod
    def _math_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_math(value)
            except TransformError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Transform:
        if (self.math is None) == (self.mapping is None):
            raise ValueError("give exactly one of math or mapping")
        if self.mapping is not None and not self.mapping:
            raise ValueError("mapping: must list at least one value")
        return self


class CanSignalMap(_Strict):
    """One DBC signal read as one catalog (VSS) signal, downsampled before the outbox.

    A decoded value is kept only when ``interval_ms`` passed since the last kept one (0: every
    frame); with ``on_change`` it must also differ from the last kept value, by more than
    ``deadband`` when one is set (kuksa-can-provider's semantics, decision D25).
    """

    message: str = Field(description="the DBC message's name")
    signal: str = Field(description="the DBC signal's name")
    vss: str = Field(description="the catalog (VSS) name the value is stored under")
    interval_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 1000
    on_change: bool = False
    deadband: Annotated[float, Field(ge=0)] = 0.0
    transform: Transform | None = None

    @field_validator("vss")
    @classmethod
    def _in_catalog(cls, value: str) -> str:
        try:
            by_name(value)
        except UnknownSignalError:
            raise ValueError(f"{value!r} is not a signal in the catalog") from None
        return value


class CanProfile(_Strict):
    """The vehicle's CAN bus: how to reach it, its DBC files, and the signals to keep.

    ``dbc`` names files in this package's ``dbc/`` folder, or paths relative to the profile
    file. With ``j1939`` a 29-bit frame matches its DBC message by parameter group number,
    whatever its priority and source address.
    """

    interface: Literal["socketcan", "slcan", "virtual"] = "socketcan"
    channel: str = "can0"
    bitrate: Literal[10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 1_000_000] = (
        500_000
    )
    j1939: bool = False
    dbc: Annotated[list[str], Field(min_length=1)]
    signals: Annotated[list[CanSignalMap], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_source_per_vss_name(self) -> CanProfile:
        seen: set[str] = set()
        for mapping in self.signals:
            if mapping.vss in seen:
                raise ValueError(f"signals: {mapping.vss!r} is mapped more than once")
            seen.add(mapping.vss)
        return self


class AlertThresholds(_Strict):
    """Named limits the in-cab alert rules compare signals with (``fleetlink.edge.alerts``).

    Unset: the agent's default for that rule, except ``overspeed_kmh``: without it (and
    without a limit in the device config or a speed zone) there is no speeding alert. The
    device config's ``[alerts]`` overrides each of them.
    """

    overspeed_kmh: Annotated[float, Field(gt=0, le=300)] | None = None
    coolant_overheat_c: Annotated[float, Field(gt=0, le=150)] | None = None
    harsh_brake_mps2: Annotated[float, Field(gt=0, le=15)] | None = None
    harsh_accel_mps2: Annotated[float, Field(gt=0, le=15)] | None = None
    harsh_corner_mps2: Annotated[float, Field(gt=0, le=15)] | None = None
    idle_minutes: Annotated[float, Field(gt=0, le=240)] | None = None
    low_battery_v: Annotated[float, Field(gt=0, le=36)] | None = None
    fuel_drop_pct: Annotated[float, Field(gt=0, le=100)] | None = None

    def threshold(self, rule: str) -> float | None:
        """Return this profile's threshold for the alert rule named ``rule`` (None: unset)."""
        field = {
            "coolant_overheat": "coolant_overheat_c",
            "harsh_brake": "harsh_brake_mps2",
            "harsh_accel": "harsh_accel_mps2",
            "harsh_corner": "harsh_corner_mps2",
            "idling": "idle_minutes",
            "low_battery": "low_battery_v",
            "fuel_drop": "fuel_drop_pct",
        }.get(rule)
        return None if field is None else getattr(self, field)


class ModelRef(_Strict):
    """An on-device model the profile uses: its file, its SHA-256 and its input signals."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    file: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    features: Annotated[list[str], Field(min_length=1)]

    @field_validator("features")
    @classmethod
    def _features_in_catalog(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                by_name(name)
            except UnknownSignalError:
                raise ValueError(f"{name!r} is not a signal in the catalog") from None
        return value


class Profile(_Strict):
    """One vehicle platform's profile (format 1 or 2)."""

    format: Literal[1, 2]
    id: str
    name: str
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    description: str = ""
    match: Match = Field(default_factory=Match)
    obd: ObdProfile | None = None
    can: CanProfile | None = None
    alerts: AlertThresholds = Field(default_factory=AlertThresholds)
    models: list[ModelRef] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not PROFILE_ID.match(value):
            raise ValueError("must be 1-64 lower-case letters, digits and dashes")
        return value

    @model_validator(mode="after")
    def _sections_fit_the_format(self) -> Profile:
        if self.format == 1:
            newer = [k for k in ("can", "alerts", "models") if k in self.model_fields_set]
            if newer:
                raise ValueError(f"{', '.join(newer)}: need format = 2")
            if self.obd is None:
                raise ValueError("obd: is required in a format 1 profile")
        elif self.obd is None and self.can is None:
            raise ValueError("a profile reads something: give [obd] or [can] (or both)")
        return self

    @property
    def poll_groups(self) -> list[PollGroup]:
        """Return the profile's OBD poll groups (none for a CAN-only profile)."""
        return self.obd.poll if self.obd else []

    @property
    def obd_adapter(self) -> ObdAdapter:
        """Return the profile's OBD adapter settings (the defaults for a CAN-only profile)."""
        return self.obd.adapter if self.obd else ObdAdapter()

    @model_validator(mode="after")
    def _no_command_twice(self) -> Profile:
        seen: set[str] = set()
        for group in self.poll_groups:
            twice = seen.intersection(group.commands)
            if twice:
                raise ValueError(f"obd.poll names {sorted(twice)} in more than one group")
            seen.update(group.commands)
        for pid in self.obd.pids if self.obd else []:
            if pid.command in seen:
                raise ValueError(f"obd.pids names {pid.command!r} twice or also in obd.poll")
            seen.add(pid.command)
        return self
