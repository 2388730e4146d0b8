"""What the ingest workers read from: one small interface, one module per broker kind.

``mqtt_source.MqttSource`` subscribes over MQTT (a shared subscription splits the load on an
MQTT 5 broker); ``nats_source.NatsSource`` pulls from a JetStream consumer that every ingest
process shares, for a NATS cluster whose MQTT gateway speaks 3.1.1 only. Both hand classified
deliveries to the worker through ``take``, hold a slot per delivery until ``release``, acknowledge a
delivery only when told (after its data is committed) and publish the acks devices read.
"""

from __future__ import annotations

from typing import Protocol

from fleetlink.cloud.ingest.inbound import Inbound
from fleetlink.cloud.ingest.mqtt_source import FlowWindow


class IngestSource(Protocol):
    """One connection feeding one ingest worker."""

    client_id: str
    # The in-flight settings as asked and as the broker answered (None where not known).
    window: FlowWindow | None
    # The most deliveries held at once since start.
    peak_held: int

    @property
    def connected(self) -> bool:
        """Return True while deliveries can flow."""
        ...

    def start(self) -> None:
        """Connect in the background (call from the event loop); reconnects by itself."""

    async def wait_connected(self, timeout_s: float) -> bool:
        """Return True once ready to receive, False if ``timeout_s`` passed first."""
        ...

    def stop(self) -> None:
        """Disconnect (may block: run it off the event loop); unacked deliveries stay with
        the broker and are delivered again."""

    def take(self, limit: int) -> list[Inbound]:
        """Return up to ``limit`` classified deliveries, oldest first, removing them."""
        ...

    @property
    def waiting(self) -> int:
        """Return how many deliveries wait to be taken."""
        ...

    @property
    def held(self) -> int:
        """Return how many deliveries were received and not yet released."""
        ...

    def release(self, count: int = 1) -> None:
        """Free ``count`` slots after the worker handled that many deliveries."""

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one delivery to the broker; call only after its data is committed."""

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish ``payload`` on the MQTT ``topic`` (the acks and answers devices read)."""
