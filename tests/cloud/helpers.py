"""Builders of device messages for the cloud tests."""

from __future__ import annotations

import time
import uuid

from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Event, EventBatch, Series, TelemetryBatch
from fleetlink.shared.topics import Kind, topic

SPEED = 0x0D
RPM = 0x0C


def now_ms() -> int:
    return int(time.time() * 1000)


def telemetry(
    device: str, seq: int, base_ms: int | None = None, values: dict[int, list[float]] | None = None
) -> bytes:
    """Return an encoded TelemetryBatch; samples 1 s apart from ``base_ms``."""
    values = values if values is not None else {SPEED: [10.0, 20.0, 30.0], RPM: [800.0, 900.0]}
    return encode(
        TelemetryBatch(
            device_id=device,
            seq=seq,
            base_time_ms=base_ms if base_ms is not None else now_ms() - 60_000,
            series=[
                Series(signal_id=sid, offsets_ms=[i * 1000 for i in range(len(v))], values=v)
                for sid, v in values.items()
            ],
        )
    )


def events(device: str, seq: int, count: int = 2) -> tuple[bytes, list[uuid.UUID]]:
    ids = [uuid.uuid4() for _ in range(count)]
    batch = EventBatch(
        device_id=device,
        seq=seq,
        events=[
            Event(
                id=i,
                time_ms=now_ms(),
                type="harsh_braking",
                severity="warning",
                data={"decel_ms2": 6.5},
            )
            for i in ids
        ],
    )
    return encode(batch), ids


def telemetry_topic(tenant: str, device: str) -> str:
    return topic(tenant, device, Kind.TELEMETRY)


def events_topic(tenant: str, device: str) -> str:
    return topic(tenant, device, Kind.EVENTS)
