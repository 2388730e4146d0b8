"""Pydantic v2 models of every message on the wire (see topics.py for where each travels)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Literal[1] = 1

DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Seq = Annotated[int, Field(ge=1, lt=2**63)]
SignalId = Annotated[int, Field(ge=0, lt=2**15)]
UnixMs = Annotated[int, Field(ge=0, lt=2**53)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Series(_Message):
    """The samples of one signal in a batch, as columns: time offsets and values."""

    signal_id: SignalId
    offsets_ms: list[Annotated[int, Field(ge=0, lt=2**31)]]
    values: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> Series:
        if len(self.offsets_ms) != len(self.values):
            raise ValueError(
                f"signal {self.signal_id}: {len(self.offsets_ms)} offsets but "
                f"{len(self.values)} values"
            )
        return self


class TelemetryBatch(_Message):
    """A batch of samples from one device; ``seq`` is unique per device and never reused."""

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    seq: Seq
    base_time_ms: UnixMs
    series: list[Series]

    @property
    def sample_count(self) -> int:
        return sum(len(s.values) for s in self.series)


class Event(_Message):
    """Something that happened once: an alert, a DTC set or cleared, a trip boundary, a gap."""

    id: uuid.UUID
    time_ms: UnixMs
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    severity: Literal["info", "warning", "critical"] = "info"
    data: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class EventBatch(_Message):
    """Events from one device; shares the device's ``seq`` space with telemetry batches."""

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    seq: Seq
    events: list[Event]


class Ack(_Message):
    """The cloud's word that these batches are committed (or dead-lettered) and may be deleted."""

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    seqs: list[Seq]
    high_water: Annotated[int, Field(ge=0)] = 0


class Status(_Message):
    """A device's retained presence message, also its MQTT last will (``online=False``)."""

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    online: bool
    time_ms: UnixMs
    agent_version: str = ""
    adapter: Literal["connected", "stalled", "no_vehicle", "disconnected", "unknown"] = "unknown"
    buffered_batches: Annotated[int, Field(ge=0)] = 0
