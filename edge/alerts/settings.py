"""The ``[alerts]`` section of the device configuration: which rules run, their limits, when a
nudge is escalated, and which sinks tell the driver.

A rule's threshold comes from this section when it sets one, else from the firmware profile's
``[alerts]``, else from :data:`DEFAULT_THRESHOLDS`; a rule is off only with ``enabled = false``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

RuleName = Literal[
    "harsh_brake",
    "harsh_accel",
    "harsh_corner",
    "speeding",
    "idling",
    "coolant_overheat",
    "low_battery",
    "mil_on",
    "new_dtc",
    "fuel_drop",
    "anomaly",
]
SinkName = Literal["terminal", "speech", "cab_display", "gpio"]
DEFAULT_SINKS: tuple[SinkName, ...] = ("terminal", "cab_display")
Severity = Literal["info", "warning", "critical"]

# Used when neither the device config nor the profile sets a rule's threshold. Units: the
# rule's own (see fleetlink.edge.alerts.rules): m/s², km/h over the limit, minutes, °C, V, %.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "harsh_brake": 4.0,
    "harsh_accel": 3.5,
    "harsh_corner": 4.0,
    "speeding": 0.0,
    "idling": 5.0,
    "coolant_overheat": 110.0,
    "low_battery": 11.8,
    "mil_on": 0.5,
    "new_dtc": 0.5,
    "fuel_drop": 10.0,
    "anomaly": 0.5,
}
DEFAULT_HYSTERESIS: dict[str, float] = {
    "harsh_brake": 1.0,
    "harsh_accel": 1.0,
    "harsh_corner": 1.0,
    "speeding": 5.0,
    "idling": 0.0,
    "coolant_overheat": 5.0,
    "low_battery": 0.3,
    "mil_on": 0.0,
    "new_dtc": 0.0,
    "fuel_drop": 5.0,
    "anomaly": 0.0,
}
# Speeding has no limit of its own unless the profile, this section or a speed zone gives one.
DEFAULT_SPEED_LIMIT_KMH: float | None = None

_NonNegative = Annotated[float, Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSettings(_Section):
    """One rule's overrides; anything unset falls back to the section, profile or default."""

    enabled: bool = True
    threshold: float | None = None
    hysteresis: _NonNegative | None = None
    cooldown_s: _NonNegative | None = None
    escalate_after: Annotated[int, Field(ge=0, le=1000)] | None = Field(
        default=None, description="repeats within escalate_within_min that escalate; 0: never"
    )
    escalate_within_min: Annotated[float, Field(gt=0)] | None = None
    severity: Severity | None = Field(
        default=None, description="severity of the escalation (default warning)"
    )


class AlertsSection(_Section):
    """In-cab alerts: rules over the signals, nudge then escalate, and the sinks."""

    enabled: bool = True
    sinks: list[SinkName] = Field(default_factory=lambda: list(DEFAULT_SINKS))
    speed_limit_kmh: Annotated[float, Field(gt=0, le=300)] | None = Field(
        default=None,
        description="speeding limit outside speed zones (default: the profile's overspeed_kmh)",
    )
    cooldown_s: _NonNegative = Field(
        default=60.0, description="after a rule fires it stays quiet this long"
    )
    window_s: Annotated[float, Field(gt=0, le=120)] = Field(
        default=10.0, description="seconds of signal values before an alert sent with it"
    )
    escalate_after: Annotated[int, Field(ge=0, le=1000)] = 3
    escalate_within_min: Annotated[float, Field(gt=0)] = 30.0
    rules: dict[RuleName, RuleSettings] = Field(default_factory=dict)
    display_address: str = Field(
        default="127.0.0.1", description="address the cab display page listens on"
    )
    display_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8421, description="its port (0: any free port)"
    )
    speech_command: str = Field(default="espeak-ng", description="text-to-speech program")
    gpio_sysfs: Path = Field(
        default=Path("/sys/class/gpio"), description="where the kernel exports GPIO lines"
    )
    gpio_line: Annotated[int, Field(ge=0)] = Field(
        default=17, description="GPIO line of the buzzer/LED (exported, direction out)"
    )
    gpio_pulse_s: Annotated[float, Field(gt=0, le=10)] = 0.5

    def rule(self, name: str) -> RuleSettings:
        """Return the settings of rule ``name`` (all defaults when the section names none)."""
        return self.rules.get(name, RuleSettings())  # type: ignore[call-overload]
