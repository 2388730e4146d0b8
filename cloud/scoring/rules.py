"""A tenant's scoring rules as data: detection thresholds, weighted event rules, speeding bands,
risk bands and badges. The defaults live in ``default_rules.toml``; a tenant's own document is
stored in ``scoring_rules`` and validated by these models on the way in and out."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from typing import Annotated

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetlink.cloud.trips.segment import Detection

EVENT_TYPE = r"^[a-z][a-z0-9_]{0,63}$"
_METRIC = re.compile(
    r"^(distance_km|score|idle_share|fuel_l_per_100km|trips"
    r"|events:[a-z][a-z0-9_]{0,63}"
    r"|km_since:[a-z][a-z0-9_]{0,63}"
    r"|streak_days_without:[a-z][a-z0-9_]{0,63})$"
)
METRIC_DESCRIPTION = (
    "distance_km, score, idle_share (idle time / trip time), fuel_l_per_100km, trips, "
    "events:<type> (count), km_since:<type> (km driven since the last such event), "
    "streak_days_without:<type> (driving days in a row up to the end, without one)"
)
Points = Annotated[float, Field(ge=0, le=1000, strict=True)]


class _Strict(BaseModel):
    """Unknown fields are refused; numbers must be numbers (``false`` is not 0)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class DetectionRules(_Strict):
    gap_s: float = Field(300, gt=0, le=86_400, description="A longer silence ends a trip")
    ignition_rpm: float = Field(300, ge=0, le=5000)
    moving_kmh: float = Field(1, gt=0, le=20)
    min_trip_speed_kmh: float = Field(5, ge=0, le=100)
    harsh_braking_ms2: float = Field(3.5, gt=0, le=20)
    harsh_acceleration_ms2: float = Field(3.0, gt=0, le=20)
    harsh_max_dt_s: float = Field(3, gt=0, le=10)
    speed_limit_kmh: float = Field(110, gt=0, le=300)
    speeding_min_s: float = Field(10, ge=0, le=3600)
    idling_min_s: float = Field(120, ge=0, le=86_400)

    def detection(self) -> Detection:
        return Detection(**self.model_dump())


class EventRule(_Strict):
    type: str = Field(pattern=EVENT_TYPE, description="Driving event type it weighs")
    points: Points = 0
    points_per_minute: Points = 0


class SpeedingBand(_Strict):
    over_kmh: float = Field(ge=0, le=300, description="Lower bound of the peak over the limit")
    points: Points = 0
    points_per_minute: Points = 0


class RiskBand(_Strict):
    name: str = Field(min_length=1, max_length=40)
    min_score: float = Field(ge=0, le=100)


class Award(_Strict):
    """A bound on a metric: at least, at most, or both."""

    metric: str = Field(description=METRIC_DESCRIPTION, max_length=100)
    at_least: float | None = Field(None, ge=-1e9, le=1e9)
    at_most: float | None = Field(None, ge=-1e9, le=1e9)
    min_distance_km: float = Field(0, ge=0, le=1e7, description="Driving needed to qualify")

    @model_validator(mode="after")
    def _bounded(self) -> Award:
        if not _METRIC.match(self.metric):
            raise ValueError(f"unknown metric {self.metric!r}; one of {METRIC_DESCRIPTION}")
        if self.at_least is None and self.at_most is None:
            raise ValueError("give at_least, at_most or both")
        return self

    def met(self, value: float | None, distance_km: float) -> bool:
        if value is None or distance_km < self.min_distance_km:
            return False
        if self.at_least is not None and value < self.at_least:
            return False
        return self.at_most is None or value <= self.at_most


class Badge(Award):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)


class ScoringRules(_Strict):
    min_distance_km: float = Field(5, ge=0, le=10_000, description="Less driving: no score")
    detection: DetectionRules = Field(default_factory=DetectionRules)
    rules: list[EventRule] = Field(default_factory=list, max_length=50)
    speeding_bands: list[SpeedingBand] = Field(default_factory=list, max_length=20)
    risk_bands: list[RiskBand] = Field(min_length=1, max_length=10)
    badges: list[Badge] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> ScoringRules:
        types = [r.type for r in self.rules]
        if len(set(types)) != len(types):
            raise ValueError("each event type may have one rule")
        if "speeding" in types:
            raise ValueError("speeding is weighed by speeding_bands, not a rule")
        if not any(b.min_score == 0 for b in self.risk_bands):
            raise ValueError("one risk band needs min_score 0, so every score has a band")
        ids = [b.id for b in self.badges]
        if len(set(ids)) != len(ids):
            raise ValueError("badge ids must be unique")
        return self

    def band_for(self, score: float) -> str:
        """Return the name of the highest risk band ``score`` reaches."""
        for band in sorted(self.risk_bands, key=lambda b: -b.min_score):
            if score >= band.min_score:
                return band.name
        return self.risk_bands[-1].name

    def speeding_band(self, over_kmh: float) -> SpeedingBand | None:
        fitting = [b for b in self.speeding_bands if b.over_kmh <= over_kmh]
        return max(fitting, key=lambda b: b.over_kmh) if fitting else None


@cache
def default_rules() -> ScoringRules:
    """Return the packaged default rules."""
    text = resources.files("fleetlink.cloud.scoring").joinpath("default_rules.toml").read_text()
    return ScoringRules.model_validate(tomllib.loads(text))


async def rules_of(conn: asyncpg.Connection, tenant: str) -> ScoringRules:
    """Return ``tenant``'s rules, or the defaults when it has not set its own."""
    stored = await conn.fetchval("SELECT rules FROM scoring_rules WHERE tenant_id = $1", tenant)
    if stored is None:
        return default_rules()
    if isinstance(stored, str):  # the ingest's connections have no json codec
        return ScoringRules.model_validate_json(stored)
    return ScoringRules.model_validate(stored)
