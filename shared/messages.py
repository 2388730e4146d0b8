"""Pydantic v2 models of every message on the wire (see topics.py for where each travels).

Every number and list is bounded here, at the edge of the system, so that no message a
client can publish makes a receiver overflow, allocate without limit or crash: times lie
in 1970..2100, seqs below 2**53 (exact in every JSON reader), a batch holds at most
``MAX_SAMPLES_PER_BATCH`` samples. A message outside these bounds does not decode.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Literal[1] = 1

MAX_SEQ = 2**53 - 1
MIN_TIME_MS = 0
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_OFFSET_MS = 2**31 - 1
MAX_SAMPLES_PER_BATCH = 20_000
MAX_SERIES_PER_BATCH = 1_024
MAX_EVENTS_PER_BATCH = 1_000
MAX_SEQS_PER_ACK = 10_000
# The event type of a gap record (samples a device gave up; fleetlink.edge.gaps).
GAP_EVENT = "gap"

DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
HighWater = Annotated[int, Field(ge=0, le=MAX_SEQ)]
SignalId = Annotated[int, Field(ge=0, lt=2**15)]
UnixMs = Annotated[int, Field(ge=MIN_TIME_MS, lt=MAX_TIME_MS)]
ShortText = Annotated[str, Field(max_length=256)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Series(_Message):
    """The samples of one signal in a batch, as columns: time offsets and values."""

    signal_id: SignalId
    offsets_ms: Annotated[
        list[Annotated[int, Field(ge=0, le=MAX_OFFSET_MS)]],
        Field(max_length=MAX_SAMPLES_PER_BATCH),
    ]
    values: Annotated[list[float], Field(max_length=MAX_SAMPLES_PER_BATCH)]

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
    series: Annotated[list[Series], Field(max_length=MAX_SERIES_PER_BATCH)]

    @model_validator(mode="after")
    def _bounded(self) -> TelemetryBatch:
        count = self.sample_count
        if count > MAX_SAMPLES_PER_BATCH:
            raise ValueError(f"{count} samples in one batch; at most {MAX_SAMPLES_PER_BATCH}")
        return self

    @property
    def sample_count(self) -> int:
        return sum(len(s.values) for s in self.series)


class Event(_Message):
    """Something that happened once: an alert, a DTC set or cleared, a trip boundary, a gap."""

    id: uuid.UUID
    time_ms: UnixMs
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    severity: Literal["info", "warning", "critical"] = "info"
    data: Annotated[
        dict[Annotated[str, Field(max_length=64)], ShortText | int | float | bool | None],
        Field(max_length=64),
    ] = Field(default_factory=dict)


class EventBatch(_Message):
    """Events from one device; shares the device's ``seq`` space with telemetry batches."""

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    seq: Seq
    events: Annotated[list[Event], Field(max_length=MAX_EVENTS_PER_BATCH)]


Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
Nonce = Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]


class Ack(_Message):
    """The cloud's word that these batches are stored (or kept as dead letters) and may be
    deleted; also its answer to a ``Hello`` (no seqs, the hello's ``nonce`` echoed).

    ``digests[i]`` is the digest (``payload_digest``) of the bytes the cloud holds under
    ``seqs[i]``: a device deletes a batch only if that is its own batch. ``counter`` grows
    with every ack to the device; ``mac`` is the HMAC-SHA256 over all other fields with the
    device's key (``fleetlink.shared.signing``). Empty ``mac``: an unsigned ack, which a
    device with a key ignores.
    """

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    seqs: Annotated[list[Seq], Field(max_length=MAX_SEQS_PER_ACK)]
    high_water: HighWater = 0
    digests: Annotated[list[Digest], Field(max_length=MAX_SEQS_PER_ACK)] = Field(
        default_factory=list
    )
    counter: Annotated[int, Field(ge=0, le=MAX_SEQ)] = 0
    nonce: Nonce | Literal[""] = ""
    mac: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""

    @model_validator(mode="after")
    def _one_digest_per_seq(self) -> Ack:
        if self.digests and len(self.digests) != len(self.seqs):
            raise ValueError(f"{len(self.digests)} digests for {len(self.seqs)} seqs")
        return self


class Hello(_Message):
    """A device asks the cloud for its high-water mark before it publishes; the cloud answers
    with a signed ``Ack`` carrying the same ``nonce``. ``next_seq`` is what the device would
    use next (for the cloud's log)."""

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    nonce: Nonce
    next_seq: Annotated[int, Field(ge=1, le=MAX_SEQ + 1)]


class CanStatus(_Message):
    """What a device's CAN source sees: traffic or a silent bus (ignition off), and its counts."""

    bus: Literal["traffic", "silent", "disconnected", "unknown"]
    frames: Annotated[int, Field(ge=0)] = 0
    unknown_id_frames: Annotated[int, Field(ge=0)] = 0
    decode_errors: Annotated[int, Field(ge=0)] = 0
    garbled_lines: Annotated[int, Field(ge=0)] = 0


class ObdbStatus(_Message):
    """How a device's polling of OBDb mode 22 requests goes: the commands polled, requests by
    outcome, requests skipped while their ECU or DID was backed off, ECUs and DIDs backed off
    so far, and decoded values that are not sent (no catalog name)."""

    commands: Annotated[int, Field(ge=0)] = 0
    requests: Annotated[int, Field(ge=0)] = 0
    ok: Annotated[int, Field(ge=0)] = 0
    no_data: Annotated[int, Field(ge=0)] = 0
    negative: Annotated[int, Field(ge=0)] = 0
    silent: Annotated[int, Field(ge=0)] = 0
    refused: Annotated[int, Field(ge=0)] = 0
    garbled: Annotated[int, Field(ge=0)] = 0
    skipped_backoff: Annotated[int, Field(ge=0)] = 0
    ecus_backed_off: Annotated[int, Field(ge=0)] = 0
    dids_backed_off: Annotated[int, Field(ge=0)] = 0
    unpublished_values: Annotated[int, Field(ge=0)] = 0


PowerState = Literal["awake", "ignition_off", "low_voltage", "unknown"]


class VehicleReport(_Message):
    """What the device found of its vehicle: the firmware profile it reads it with, whether
    the vehicle is awake (``ignition_off``: polling paused so the ECUs sleep;
    ``low_voltage``: polling stopped to spare the battery), the voltage at the OBD port, and
    a capability summary (protocol, number of supported PIDs, CAN ids seen, VIN…)."""

    profile: ShortText = ""
    profile_version: Annotated[str, Field(max_length=32)] = ""
    power: PowerState = "unknown"
    battery_v: Annotated[float, Field(ge=0, le=100)] | None = None
    capabilities: Annotated[
        dict[Annotated[str, Field(max_length=64)], ShortText | int | float | bool | None],
        Field(max_length=32),
    ] = Field(default_factory=dict)


class Status(_Message):
    """A device's retained presence message, also its MQTT last will (``online=False``).

    ``vehicle`` is absent in statuses from devices without a vehicle report (and from
    earlier versions): receivers treat it as optional. Fields a newer agent adds are ignored,
    so a fleet may upgrade its devices before its cloud; the fields known here stay checked.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    online: bool
    time_ms: UnixMs
    agent_version: Annotated[str, Field(max_length=64)] = ""
    adapter: Literal["connected", "stalled", "no_vehicle", "disconnected", "unknown"] = "unknown"
    buffered_batches: Annotated[int, Field(ge=0, le=MAX_SEQ)] = 0
    can: CanStatus | None = None
    vehicle: VehicleReport | None = None
    obdb: ObdbStatus | None = None

    # What the device runs: its firmware profile, and the version of each updatable part
    # (config, profile, model) as the last applied update named it.
    profile: Annotated[str, Field(max_length=256)] = ""
    versions: Annotated[
        dict[Literal["config", "profile", "model"], Annotated[str, Field(max_length=64)]],
        Field(max_length=3),
    ] = Field(default_factory=dict)
    # On-device anomaly models by name: "running", or "off: <why>" (missing or corrupt file,
    # a hash that does not match, a signal the vehicle lacks). Absent from older agents.
    models: Annotated[
        dict[Annotated[str, Field(max_length=64)], ShortText], Field(max_length=16)
    ] = Field(default_factory=dict)


class DeviceFence(_Message):
    """One geofence as a device stores it: a polygon's outer ring, or a circle's centre and
    radius; positions are ``[longitude, latitude]`` (GeoJSON order)."""

    id: uuid.UUID
    name: ShortText
    kind: Literal["polygon", "circle"]
    coordinates: Annotated[
        list[Annotated[list[float], Field(min_length=2, max_length=2)]],
        Field(min_length=1, max_length=10_000),
    ]
    radius_m: Annotated[float, Field(gt=0)] | None = None
    speed_limit_kmh: Annotated[float, Field(gt=0)] | None = None


class GeofenceSet(_Message):
    """The cloud's command on ``cmd``: the tenant's whole fence set at ``version``; a device
    keeps the newest version it has received."""

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["geofences"] = "geofences"
    device_id: DeviceId
    version: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    fences: Annotated[list[DeviceFence], Field(max_length=1_000)]
