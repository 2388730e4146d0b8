"""What the driver is told: one alert, as every sink and the device's alert store see it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One in-cab alert.

    ``id`` is the id of the event that carries it to the cloud (the nudge, or the producer's
    own event such as an anomaly); ``escalated`` says this occurrence was also reported to the
    fleet (a coaching or vehicle-alert event); ``repeats`` counts the occurrences of its rule
    within the escalation window, this one included.
    """

    id: uuid.UUID
    rule: str
    time_ms: int
    message: str
    severity: Severity = "warning"
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    repeats: int = 1
    escalated: bool = False
    window: dict[str, str] = field(default_factory=dict)
