"""What the ingest commits, turned into live messages and geofence positions.

Runs on the ingest writer's task right after a chunk commits, so it only formats and hands
over: the hub's publish never waits, and positions go to the geofence monitor's queue. A
tenant no client watches gets no live messages at all (D104); its positions still go to the
geofence monitor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fleetlink.cloud.geofences.monitor import GeofenceMonitor, Positions
from fleetlink.cloud.ingest.inbound import EventsIn, TelemetryIn
from fleetlink.cloud.ingest.store import ChunkResult
from fleetlink.cloud.live.relay import LivePublisher
from fleetlink.shared.signals import BY_ID, by_name

LATITUDE = by_name("Vehicle.CurrentLocation.Latitude").id
LONGITUDE = by_name("Vehicle.CurrentLocation.Longitude").id


def positions_of(batch: TelemetryIn) -> list[tuple[datetime, float, float]]:
    """Return the batch's positions: latitude and longitude samples taken at the same time."""
    latitudes: dict[datetime, float] = {}
    for sid, stamps, values in batch.series:
        if sid == LATITUDE:
            latitudes.update(zip(stamps, values, strict=True))
    if not latitudes:
        return []
    return sorted(
        (ts, latitudes[ts], value)
        for sid, stamps, values in batch.series
        if sid == LONGITUDE
        for ts, value in zip(stamps, values, strict=True)
        if ts in latitudes
    )


class LiveFeed:
    """The ingest's ``on_commit`` observer."""

    def __init__(self, hub: LivePublisher, geofences: GeofenceMonitor | None = None) -> None:
        self.hub = hub
        self.geofences = geofences
        self.skipped = 0  # committed messages not formatted: nobody watched their tenant

    def on_commit(self, result: ChunkResult) -> None:
        watched: dict[str, bool] = {}
        for item, vehicle in result.new:
            tenant = item.topic.tenant
            if isinstance(item, TelemetryIn) and vehicle is not None and self.geofences is not None:
                points = positions_of(item)
                if points:
                    self.geofences.offer(Positions(tenant, vehicle, item.device, points))
            if tenant not in watched:
                watched[tenant] = self.hub.watches(tenant)
            if not watched[tenant]:
                self.skipped += 1
                continue
            vehicle_id = str(vehicle) if vehicle is not None else None
            if isinstance(item, TelemetryIn):
                self._telemetry(tenant, vehicle_id, item)
            elif isinstance(item, EventsIn):
                for event in item.batch.events:
                    self.hub.publish(
                        tenant,
                        "event",
                        {
                            "id": str(event.id),
                            "vehicle_id": vehicle_id,
                            "device_id": item.device,
                            "ts": datetime.fromtimestamp(event.time_ms / 1000, UTC).isoformat(),
                            "type": event.type,
                            "severity": event.severity,
                            "data": event.data,
                        },
                        vehicle_id,
                    )

    def _telemetry(self, tenant: str, vehicle_id: str | None, item: TelemetryIn) -> None:
        signals: dict[str, Any] = {}
        for sid, (ts, value) in item.latest.items():
            signal = BY_ID.get(sid)
            if signal is None:
                signals[str(sid)] = {"value": value, "ts": ts.isoformat()}
            else:
                signals[signal.name] = {"value": value, "unit": signal.unit, "ts": ts.isoformat()}
        if not signals:
            return
        self.hub.publish(
            tenant,
            "signals",
            {
                "vehicle_id": vehicle_id,
                "device_id": item.device,
                "seq": item.seq,
                "ts": item.last_ts.isoformat(),
                "signals": signals,
            },
            vehicle_id,
            signals,
        )
