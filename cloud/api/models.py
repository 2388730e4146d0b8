"""Pydantic models of the API's query parameters and responses; the OpenAPI document is built
from them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

MAX_SERIES_POINTS = 10_000
MAX_BUCKET_S = 86_400
_BUCKET = re.compile(r"^(\d+)(s|m|h|d)?$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
# Query times outside this range are refused with 400 (the contract's sample times lie in it).
EARLIEST_QUERY = datetime(1970, 1, 2, tzinfo=UTC)
LATEST_QUERY = datetime(2100, 1, 1, tzinfo=UTC)


class Vehicle(BaseModel):
    id: uuid.UUID
    name: str
    vin: str | None = None
    device_id: str | None = Field(None, description="The device currently installed, if any")
    created_at: datetime


class VehicleList(BaseModel):
    items: list[Vehicle]


class LatestSignal(BaseModel):
    signal_id: int
    name: str = Field(description="VSS name from the signal catalog")
    unit: str
    value: float
    ts: datetime


class LatestSignals(BaseModel):
    vehicle_id: uuid.UUID
    signals: list[LatestSignal]


class SeriesQuery(BaseModel):
    """Query of a bucketed series; ``from`` and ``to`` default to the last hour."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: AwareDatetime | None = Field(
        None, alias="from", description="Start (inclusive), ISO 8601"
    )
    to: AwareDatetime | None = Field(None, description="End (exclusive), ISO 8601")
    bucket: str = Field(
        "60s",
        description="Bucket width: seconds, or a number with s, m, h or d (max 1d)",
        pattern=r"^\d+(s|m|h|d)?$",
    )

    @field_validator("from_", "to")
    @classmethod
    def _time_in_range(cls, value: datetime | None) -> datetime | None:
        if value is not None and not EARLIEST_QUERY <= value <= LATEST_QUERY:
            raise ValueError(
                f"must lie between {EARLIEST_QUERY.isoformat()} and {LATEST_QUERY.isoformat()}"
            )
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket_in_range(cls, value: str) -> str:
        seconds = bucket_seconds(value)
        if not 1 <= seconds <= MAX_BUCKET_S:
            raise ValueError(f"bucket must be between 1s and 1d, not {value}")
        return value


def bucket_seconds(value: str) -> int:
    """Return the bucket width in seconds; raise ValueError if ``value`` is not one."""
    match = _BUCKET.match(value)
    if match is None:
        raise ValueError(f"bucket {value!r} is not a number with an optional s, m, h or d")
    return int(match.group(1)) * _UNIT_S[match.group(2) or "s"]


class SeriesBucket(BaseModel):
    bucket_start: datetime
    avg: float
    min: float
    max: float
    count: int


class Series(BaseModel):
    vehicle_id: uuid.UUID
    signal_id: int
    name: str
    unit: str
    from_: datetime = Field(alias="from")
    to: datetime
    bucket_s: int
    buckets: list[SeriesBucket] = Field(
        description="Buckets holding at least one sample, oldest first"
    )

    model_config = ConfigDict(populate_by_name=True)


class Health(BaseModel):
    status: str = Field(description="'ok', or 'unavailable' when a check failed")
    version: str = Field(description="the Fleetlink version this server runs")
    checks: dict[str, str] = Field(default_factory=dict)


class Problem(BaseModel):
    """An RFC 9457 problem details body."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, Any]] | None = None
