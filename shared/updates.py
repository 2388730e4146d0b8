"""Remote updates: a configuration, firmware profile or model pushed on a device's ``cmd``
topic, signed by the cloud with Ed25519.

The cloud signs every field but ``signature`` (canonical JSON) with its update key
(``fleetlink cloud keys update-key``); a device holds only the public key, received at
enrollment, and applies an update only if the signature verifies and the content's
SHA-256 is the one signed. :func:`refusal` says why an update must not be applied.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.shared.messages import DeviceId, UnixMs

MAX_CONTENT_BYTES = 4 * 1024 * 1024
UpdateKind = Literal["config", "profile", "model"]
Version = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]{1,64}$")]


class UpdateKeyError(ValueError):
    """Raised for an update key that is not 64 hexadecimal characters."""


class UpdateCommand(BaseModel):
    """One update for one device; ``content_b64`` is the file itself, base64."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    command_id: uuid.UUID
    device_id: DeviceId
    kind: UpdateKind
    version: Version
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    content_b64: Annotated[str, Field(max_length=(MAX_CONTENT_BYTES * 4) // 3 + 4)]
    issued_ms: UnixMs
    signature: Annotated[str, Field(pattern=r"^([0-9a-f]{128})?$")] = ""

    def content(self) -> bytes:
        """Return the decoded content; raise ValueError if it is not base64."""
        try:
            return base64.b64decode(self.content_b64, validate=True)
        except (binascii.Error, ValueError) as exc:  # ValueError: characters outside ASCII
            raise ValueError(f"content is not base64: {exc}") from None


def _signed_bytes(command: UpdateCommand) -> bytes:
    body = command.model_dump(mode="json", exclude={"signature"})
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def private_key(text: str) -> Ed25519PrivateKey:
    """Return the signing key written as 64 hex characters; raise UpdateKeyError if not one."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UpdateKeyError("an update signing key is 64 hexadecimal characters")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key(text: str) -> Ed25519PublicKey:
    """Return the verifying key written as 64 hex characters; raise UpdateKeyError if not."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UpdateKeyError("an update public key is 64 hexadecimal characters")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_hex(key: Ed25519PrivateKey) -> str:
    """Return the public half of ``key`` as 64 hex characters."""
    return key.public_key().public_bytes_raw().hex()


def new_private_hex() -> str:
    """Return a fresh signing key as 64 hex characters."""
    return Ed25519PrivateKey.generate().private_bytes_raw().hex()


def make_update(
    key: Ed25519PrivateKey,
    device_id: str,
    kind: UpdateKind,
    version: str,
    content: bytes,
    issued_ms: int,
    command_id: uuid.UUID | None = None,
) -> UpdateCommand:
    """Return a signed update carrying ``content``.

    Raises:
        ValueError: the content is larger than MAX_CONTENT_BYTES.
    """
    if len(content) > MAX_CONTENT_BYTES:
        raise ValueError(f"an update carries at most {MAX_CONTENT_BYTES} bytes")
    command = UpdateCommand(
        command_id=command_id or uuid.uuid4(),
        device_id=device_id,
        kind=kind,
        version=version,
        sha256=hashlib.sha256(content).hexdigest(),
        content_b64=base64.b64encode(content).decode(),
        issued_ms=issued_ms,
    )
    signature = key.sign(_signed_bytes(command)).hex()
    return command.model_copy(update={"signature": signature})


def refusal(key: Ed25519PublicKey, command: UpdateCommand, device_id: str) -> str | None:
    """Return why ``command`` must not be applied on ``device_id``, or None if it may."""
    if command.device_id != device_id:
        return f"the update is for device {command.device_id!r}"
    if not command.signature:
        return "the update is not signed"
    try:
        key.verify(bytes.fromhex(command.signature), _signed_bytes(command))
    except InvalidSignature:
        return "the signature does not verify with the cloud's update key"
    try:
        content = command.content()
    except ValueError as exc:
        return str(exc)
    if hashlib.sha256(content).hexdigest() != command.sha256:
        return "the content's SHA-256 is not the signed one (truncated or altered)"
    return None
