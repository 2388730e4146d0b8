"""The firmware profile format: what the agent reads from one vehicle platform.

A profile is a TOML file in this package, validated by :class:`Profile` on load. Format 1
holds the match rules and the OBD poll groups; CAN buses, DBC files, alert thresholds and
on-device models join it in later formats.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetlink.shared.signals import UnknownSignalError, by_obd_command

PROFILE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PollGroup(_Strict):
    """OBD commands (python-obd names, all in the signal catalog) read at one rate."""

    commands: Annotated[list[str], Field(min_length=1)]
    rate_hz: float

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
            try:
                by_obd_command(name)
            except UnknownSignalError:
                raise ValueError(f"{name!r} is not an OBD command in the signal catalog") from None
        return value


class Match(_Strict):
    """Which vehicles a profile is for; an empty match is a fallback for any vehicle."""

    wmi: list[Annotated[str, Field(pattern=r"^[A-HJ-NPR-Z0-9]{3}$")]] = Field(
        default_factory=list, description="VIN world manufacturer identifiers (first 3 characters)"
    )
    makes: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    years: tuple[int, int] | None = None

    @field_validator("years")
    @classmethod
    def _ordered_years(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1980 <= value[0] <= value[1] <= 2100:
            raise ValueError("must be [first, last] model years between 1980 and 2100")
        return value

    @property
    def is_fallback(self) -> bool:
        return not (self.wmi or self.makes or self.models or self.years)


class ObdProfile(_Strict):
    poll: Annotated[list[PollGroup], Field(min_length=1)]


class Profile(_Strict):
    """One vehicle platform's profile (format 1)."""

    format: Literal[1]
    id: str
    name: str
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    description: str = ""
    match: Match = Field(default_factory=Match)
    obd: ObdProfile

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not PROFILE_ID.match(value):
            raise ValueError("must be 1-64 lower-case letters, digits and dashes")
        return value

    @model_validator(mode="after")
    def _no_command_twice(self) -> Profile:
        seen: set[str] = set()
        for group in self.obd.poll:
            twice = seen.intersection(group.commands)
            if twice:
                raise ValueError(f"obd.poll names {sorted(twice)} in more than one group")
            seen.update(group.commands)
        return self
