"""The MQTT topic scheme: ``fl/v1/{tenant}/{device}/{kind}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "fl/v1"
SHARED_GROUP = "ingest"
_SEGMENT = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# The longest valid topic: prefix, two 64-character segments, the longest kind.
MAX_TOPIC_LENGTH = len(PREFIX) + 2 * 65 + 1 + len("telemetry")


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    EVENTS = "events"
    STATUS = "status"
    CMD = "cmd"
    # cloud -> device: the tenant's geofence set, retained (a topic of its own, so it never
    # replaces a retained update on ``cmd``)
    FENCES = "fences"
    ACK = "ack"
    # device -> cloud: "what is my high-water mark?"; answered with an Ack (empty seqs)
    HELLO = "hello"


class TopicError(ValueError):
    """Raised for a topic that does not follow the scheme, or an id that cannot be a segment."""


@dataclass(frozen=True, slots=True)
class Topic:
    tenant: str
    device: str
    kind: Kind

    def __str__(self) -> str:
        return f"{PREFIX}/{self.tenant}/{self.device}/{self.kind.value}"


def check_segment(value: str, what: str) -> str:
    """Return ``value`` if it is a valid topic segment (no wildcards, no slashes)."""
    if not _SEGMENT.match(value):
        raise TopicError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_', '.', ':' or '-'"
        )
    return value


def topic(tenant: str, device: str, kind: Kind) -> str:
    """Return the topic string for one device and kind."""
    check_segment(tenant, "tenant id")
    check_segment(device, "device id")
    return str(Topic(tenant, device, kind))


def parse(topic_name: str) -> Topic:
    """Split a topic into tenant, device and kind; raise TopicError if it is not ours."""
    if len(topic_name) > MAX_TOPIC_LENGTH:
        raise TopicError(f"topic of {len(topic_name)} characters is longer than any of ours")
    parts = topic_name.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != PREFIX:
        raise TopicError(f"topic {topic_name!r} is not of the form {PREFIX}/tenant/device/kind")
    tenant, device, kind = parts[2], parts[3], parts[4]
    check_segment(tenant, "tenant id")
    check_segment(device, "device id")
    try:
        return Topic(tenant, device, Kind(kind))
    except ValueError:
        raise TopicError(f"topic {topic_name!r} has unknown kind {kind!r}") from None


def subscription(kind: Kind, *, shared: bool) -> str:
    """Return the cloud's subscription filter for one kind across all tenants and devices.

    ``shared`` asks for an MQTT v5 shared subscription, so that several ingest
    workers split the load; only use it where the broker offers one.
    """
    plain = f"{PREFIX}/+/+/{kind.value}"
    return f"$share/{SHARED_GROUP}/{plain}" if shared else plain
