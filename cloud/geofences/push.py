"""Pushing a tenant's fence set to its devices that report positions, on their ``fences`` topic.

The message is retained, so a device that is offline gets the newest set when it connects.
Publishing opens a short-lived MQTT connection of its own: fence changes are rare, and an API
replica need not run an ingest worker.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetlink.cloud.geofences.fences import FenceSet
from fleetlink.cloud.ingest.protocol import BrokerAddress
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import DeviceFence, GeofenceSet
from fleetlink.shared.signals import by_name
from fleetlink.shared.topics import Kind, topic

log = logging.getLogger(__name__)

_LATITUDE = by_name("Vehicle.CurrentLocation.Latitude").id


def device_fences(fences: FenceSet) -> list[DeviceFence]:
    """Return the fences in the form devices store."""
    out = []
    for fence in fences.fences:
        geometry = fence.shape.geometry
        if geometry["type"] == "Polygon":
            kind, coordinates = "polygon", geometry["coordinates"][0]
        else:
            kind, coordinates = "circle", [geometry["coordinates"]]
        out.append(
            DeviceFence(
                id=fence.id,
                name=fence.name[:256],
                kind=kind,
                coordinates=coordinates,
                radius_m=fence.shape.radius_m,
                speed_limit_kmh=fence.speed_limit_kmh,
            )
        )
    return out


async def devices_with_positions(conn: asyncpg.Connection, tenant: str) -> list[str]:
    """Return the tenant's devices whose vehicle has reported a GNSS position."""
    rows = await conn.fetch(
        """SELECT DISTINCT a.device_id FROM device_assignments a
           JOIN latest_signals l ON l.vehicle_id = a.vehicle_id AND l.signal_id = $2
           WHERE a.tenant_id = $1 AND a.valid_to IS NULL ORDER BY 1""",
        tenant,
        _LATITUDE,
    )
    return [r["device_id"] for r in rows]


def fence_messages(
    tenant: str, devices: list[str], version: int, fences: FenceSet
) -> list[tuple[str, bytes]]:
    """Return (topic, payload) of the fence set for each device."""
    listed = device_fences(fences)
    return [
        (
            topic(tenant, device, Kind.FENCES),
            encode(GeofenceSet(device_id=device, version=version, fences=listed)),
        )
        for device in devices
    ]


def _publish(address: BrokerAddress, messages: list[tuple[str, bytes]], timeout_s: float) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fl-fences-{uuid.uuid4().hex}")
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        infos = [client.publish(t, payload, qos=1, retain=True) for t, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


async def publish_fences(
    address: BrokerAddress, messages: list[tuple[str, bytes]], timeout_s: float = 5.0
) -> bool:
    """Publish the messages; return False (and log) when the broker cannot be reached."""
    if not messages:
        return True
    try:
        await asyncio.to_thread(_publish, address, messages, timeout_s)
    except (OSError, RuntimeError, ValueError) as exc:
        log.warning("could not push the fence set to %d device(s): %s", len(messages), exc)
        return False
    return True
