"""HMAC-SHA256 signatures on messages from the cloud to one device (acks, commands).

The key is the device's own 32-byte secret (``fleetlink cloud device add`` prints it; the
device config holds it as ``device.key``). The MAC covers every field of the message but
``mac`` itself, serialised canonically (sorted JSON), so neither side depends on the wire
format or its compression.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

KEY_BYTES = 32
M = TypeVar("M", bound=BaseModel)


class DeviceKeyError(ValueError):
    """Raised for a key that is not 64 hexadecimal characters."""


def payload_digest(payload: bytes) -> str:
    """Return the short digest an ack carries for a batch's exact bytes (16 hex characters);
    the device deletes a batch only if the cloud holds bytes with this digest."""
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def new_key() -> bytes:
    """Return a fresh random device key."""
    return secrets.token_bytes(KEY_BYTES)


def parse_key(text: str) -> bytes:
    """Return the key written as 64 hex characters; raise DeviceKeyError if it is not one."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise DeviceKeyError("a device key is 64 hexadecimal characters") from None
    if len(key) != KEY_BYTES:
        raise DeviceKeyError(f"a device key is {KEY_BYTES * 2} hexadecimal characters")
    return key


def mac_of(key: bytes, message: BaseModel) -> str:
    """Return the hex HMAC-SHA256 of ``message`` (all fields but ``mac``) under ``key``."""
    return mac_of_fields(key, message.model_dump(mode="json", exclude={"mac"}))


def mac_of_fields(key: bytes, fields: Mapping[str, Any]) -> str:
    """Return the hex HMAC-SHA256 under ``key`` of a message's fields in their wire form
    (``model_dump(mode="json")``), ``mac`` left out."""
    signed = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def sign(key: bytes, message: M) -> M:
    """Return ``message`` with its ``mac`` field set."""
    return message.model_copy(update={"mac": mac_of(key, message)})


def verify(key: bytes, message: BaseModel) -> bool:
    """Return True if ``message.mac`` is the MAC of the message under ``key``."""
    mac = getattr(message, "mac", "")
    return bool(mac) and hmac.compare_digest(mac, mac_of(key, message))
