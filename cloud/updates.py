"""Remote updates: the cloud signs a configuration, firmware profile or model for one device,
records the command and publishes it on the device's ``cmd`` topic.

The command is published retained (QoS 1), so a device that is offline receives its latest
command when it next connects; a device applies a command id once. Its answer travels the
acked events path as an ``update_result`` event naming the command.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetlink.cloud.ingest.protocol import parse_mqtt_url
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.codec import encode
from fleetlink.shared.topics import Kind, topic
from fleetlink.shared.updates import UpdateCommand, UpdateKeyError, UpdateKind, make_update
from fleetlink.shared.updates import private_key as parse_private_key

_PUBLISH_TIMEOUT_S = 5.0


class UpdateError(RuntimeError):
    """Raised when an update cannot be signed or published; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def sign_update(
    settings: CloudSettings, device_id: str, kind: UpdateKind, version: str, content: bytes
) -> UpdateCommand:
    """Return the signed command.

    Raises:
        UpdateError: (503) no or a malformed signing key; (422) content too large.
    """
    if settings.update_signing_key is None:
        raise UpdateError(
            503, "FLEETLINK_UPDATE_SIGNING_KEY is not set (fleetlink cloud keys update-key)"
        )
    try:
        key = parse_private_key(settings.update_signing_key.get_secret_value())
    except UpdateKeyError as exc:
        raise UpdateError(503, f"FLEETLINK_UPDATE_SIGNING_KEY: {exc}") from None
    try:
        return make_update(key, device_id, kind, version, content, int(time.time() * 1000))
    except ValueError as exc:
        raise UpdateError(422, str(exc)) from None


async def record_command(
    conn: asyncpg.Connection, tenant: str, actor: str, command: UpdateCommand, size: int
) -> None:
    """Store the command (before it is published, in the caller's transaction)."""
    await conn.execute(
        "INSERT INTO device_commands (id, tenant_id, device_id, kind, version, sha256, size, "
        "issued_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        command.command_id,
        tenant,
        command.device_id,
        command.kind,
        command.version,
        command.sha256,
        size,
        actor,
    )


def _publish(settings: CloudSettings, name: str, payload: bytes) -> None:
    address = parse_mqtt_url(settings.mqtt_url.get_secret_value())
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fl-cmd-{uuid.uuid4().hex[:8]}")
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        info = client.publish(name, payload, qos=1, retain=True)
        info.wait_for_publish(_PUBLISH_TIMEOUT_S)
        if not info.is_published():
            raise UpdateError(503, "the broker did not confirm the command")
    finally:
        client.disconnect()
        client.loop_stop()


async def publish_command(settings: CloudSettings, tenant: str, command: UpdateCommand) -> None:
    """Publish the command retained on the device's cmd topic.

    Raises:
        UpdateError: (503) the broker cannot be reached or does not confirm.
    """
    name = topic(tenant, command.device_id, Kind.CMD)
    try:
        await asyncio.to_thread(_publish, settings, name, encode(command))
    except (OSError, ValueError) as exc:
        raise UpdateError(503, f"cannot reach the broker: {exc}") from None
