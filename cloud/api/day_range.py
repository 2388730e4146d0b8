"""A query's range of UTC days (``from`` and ``to``, both inclusive), shared by trips, totals,
scorecards and exports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EARLIEST_DAY = date(1970, 1, 2)
LATEST_DAY = date(2099, 12, 31)
MAX_RANGE_DAYS = 400
DEFAULT_DAYS = 7


class DayRange(BaseModel):
    """``from``..``to`` (inclusive UTC days); default: the last 7 days up to today."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: date | None = Field(None, alias="from", description="First day, YYYY-MM-DD (UTC)")
    to: date | None = Field(None, description="Last day (inclusive), YYYY-MM-DD (UTC)")

    @field_validator("from_", "to")
    @classmethod
    def _in_range(cls, value: date | None) -> date | None:
        if value is not None and not EARLIEST_DAY <= value <= LATEST_DAY:
            raise ValueError(f"must lie between {EARLIEST_DAY} and {LATEST_DAY}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DayRange:
        first, last = self.days()
        if first > last:
            raise ValueError("'from' must not be after 'to'")
        if (last - first).days >= MAX_RANGE_DAYS:
            raise ValueError(f"at most {MAX_RANGE_DAYS} days at once")
        return self

    def days(self) -> tuple[date, date]:
        """Return (first day, last day), filling the defaults."""
        last = self.to or (
            self.from_ + timedelta(days=DEFAULT_DAYS - 1)
            if self.from_
            else datetime.now(UTC).date()
        )
        last = min(last, LATEST_DAY)
        first = self.from_ or max(last - timedelta(days=DEFAULT_DAYS - 1), EARLIEST_DAY)
        return first, last

    def bounds(self) -> tuple[date, date]:
        """Return [first day, day after the last) for SQL."""
        first, last = self.days()
        return first, last + timedelta(days=1)
