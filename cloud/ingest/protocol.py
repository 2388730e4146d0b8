"""Which MQTT protocol and subscription the ingest uses, decided once per connection.

mosquitto and EMQX offer MQTT v5 and shared subscriptions, so several workers split the
load. The demo's embedded amqtt speaks 3.1.1 only and silently ignores ``$share/…``
filters, so there the ingest must use 3.1.1 and a plain subscription with one worker.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleetlink.cloud.settings import SharedSubscription
from fleetlink.shared.topics import SHARED_GROUP, Kind, subscription

INGESTED_KINDS = (Kind.TELEMETRY, Kind.EVENTS, Kind.STATUS, Kind.HELLO)


class IngestConfigError(ValueError):
    """Raised when the broker cannot do what the settings ask (e.g. shared subscriptions)."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __repr__(self) -> str:
        return f"BrokerAddress({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Return the broker address in ``mqtt://[user:password@]host[:port]`` (or ``mqtts://``).

    Raises IngestConfigError for another scheme or a missing host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise IngestConfigError(
            "FLEETLINK_MQTT_URL must look like mqtt://[user:password@]host[:port]"
        )
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        tls,
    )


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    """The protocol version to connect with and the filters to subscribe to."""

    protocol: MQTTProtocolVersion
    shared: bool
    group: str = SHARED_GROUP

    @property
    def filters(self) -> list[str]:
        plain = [subscription(kind, shared=False) for kind in INGESTED_KINDS]
        return [f"$share/{self.group}/{f}" for f in plain] if self.shared else plain


def plan_subscription(
    setting: SharedSubscription, broker_offers_v5: bool, group: str = SHARED_GROUP
) -> SubscriptionPlan:
    """Return the plan for this setting and broker.

    ``auto`` uses a v5 shared subscription in ``group`` where the broker offers v5, else
    3.1.1 and plain filters; ``off`` never shares; ``on`` raises IngestConfigError on a
    3.1.1-only broker.
    """
    if not broker_offers_v5:
        if setting is SharedSubscription.ON:
            raise IngestConfigError(
                "FLEETLINK_SHARED_SUBSCRIPTION=on, but the broker does not speak MQTT v5, "
                "so it cannot offer shared subscriptions; use 'auto' or 'off' with one worker"
            )
        return SubscriptionPlan(MQTTProtocolVersion.MQTTv311, shared=False)
    return SubscriptionPlan(
        MQTTProtocolVersion.MQTTv5, shared=setting is not SharedSubscription.OFF, group=group
    )


def broker_offers_mqtt5(address: BrokerAddress, timeout_s: float = 5.0) -> bool:
    """Return True if the broker accepts an MQTT v5 connection.

    A 3.1.1-only broker refuses or drops a v5 CONNECT; that, and a timeout, read as False.
    Raises OSError if nothing listens at the address.
    """
    accepted = threading.Event()
    answered = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            accepted.set()
        answered.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        answered.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"fleetlink-probe-{uuid.uuid4().hex[:12]}",
        protocol=MQTTProtocolVersion.MQTTv5,
        reconnect_on_failure=False,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect(address.host, address.port, keepalive=10)
    client.loop_start()
    try:
        answered.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return accepted.is_set()
