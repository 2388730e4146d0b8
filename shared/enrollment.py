"""What a device and the cloud exchange over HTTP when a device is enrolled, and the signed
install report a device uploads after its self-test.

Enrollment is authenticated by a one-time enrollment token only (an installer or admin makes
one in the cloud); the answer carries everything the device needs and is shown once.
An install report is signed with the device's own key (HMAC-SHA256, ``shared.signing``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleetlink.shared.messages import DeviceId, HighWater, UnixMs

ShortText = Annotated[str, Field(max_length=256)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnrollRequest(_Model):
    """The device asks to be enrolled; ``device_id`` is only given when re-enrolling a device
    the tenant already has (a reinstall keeps its id, its seq space and its history)."""

    token: Annotated[str, Field(min_length=20, max_length=128)]
    device_id: DeviceId | None = None
    vin: Annotated[str, Field(pattern=r"^[A-HJ-NPR-Z0-9]{17}$")] | None = None
    serial: Annotated[str, Field(max_length=100)] | None = None
    profile: Annotated[str, Field(max_length=64)] | None = None
    agent_version: Annotated[str, Field(max_length=64)] = ""


class EnrollResponse(_Model):
    """The device's identity and secrets; the passwords and keys here are shown only once."""

    tenant: str
    device_id: DeviceId
    vehicle_id: str | None
    vehicle_name: str | None
    mqtt_url: str
    mqtt_username: str
    mqtt_password: str
    device_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    high_water: HighWater
    update_public_key: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""


class Check(_Model):
    """One line of the self-test checklist."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    outcome: Literal["pass", "fail", "skip"]
    detail: ShortText = ""
    hint: ShortText = ""


class InstallReport(_Model):
    """A device's self-test result, signed with its key (``mac``: HMAC-SHA256, hex)."""

    v: Literal[1] = 1
    device_id: DeviceId
    time_ms: UnixMs
    agent_version: Annotated[str, Field(max_length=64)] = ""
    vin: Annotated[str, Field(max_length=17)] | None = None
    profile: Annotated[str, Field(max_length=64)] | None = None
    checks: Annotated[list[Check], Field(max_length=32)]
    mac: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""

    @property
    def passed(self) -> bool:
        return all(c.outcome != "fail" for c in self.checks)
