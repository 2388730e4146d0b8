"""The vehicle's capability record: what the agent found at connect, kept on the device.

At each connect the OBD source records the protocol, the supported PIDs, the VIN, the CAN
ids seen (when a CAN source feeds them) and the profile it chose; the record is stored in a
small SQLite file beside the outbox (its own file, so that an outbox moved aside keeps
nothing from it), one row per vehicle, and travels in summary in the status message.
``fleetlink edge profile suggest`` writes a starting profile from the same record.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.firmware_profiles.matching import identify

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vehicles (
    key TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
"""


_BITMAP_PIDS = frozenset({0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0})


class CapabilityStoreError(RuntimeError):
    """Raised when the capability file cannot be opened or written; names the file."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One vehicle as the agent found it. ``supported_pids`` are mode 01 PID numbers (the
    bitmap PIDs left out); ``can_ids`` the ids a CAN source saw; ``profile`` the profile
    chosen and its version."""

    vin: str | None
    protocol_id: str
    protocol_name: str
    supported_pids: list[int]
    adapter: str = ""
    make: str = ""
    model_years: list[int] = field(default_factory=list)
    can_ids: list[int] = field(default_factory=list)
    ecus: int = 0
    timing: str = ""
    profile: str = ""
    profile_version: str = ""
    battery_v: float | None = None
    found_ms: int = 0

    @property
    def key(self) -> str:
        """Return the record's key: the VIN, or the protocol when the vehicle gave none."""
        return self.vin or f"no-vin:{self.protocol_id or 'none'}"

    def summary(self) -> dict[str, str | int | float | bool | None]:
        """Return the short form that travels in the status message."""
        return {
            "vin": self.vin,
            "make": self.make or None,
            "protocol": self.protocol_id or None,
            "supported_pids": len(self.supported_pids),
            "can_ids": len(self.can_ids),
            "ecus": self.ecus,
            "timing": self.timing or None,
        }

    def to_json(self) -> str:
        """Return the record as JSON text."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Capabilities:
        """Return the record stored as ``text``.

        Raises:
            ValueError: not a record (not JSON, or fields missing or unknown).
        """
        try:
            return cls(**json.loads(text))
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a capability record: {exc}") from None


def read_capabilities(
    link: Elm327Link,
    vin: str | None,
    *,
    can_ids: Iterable[int] = (),
    timing: str = "",
    profile: str = "",
    profile_version: str = "",
) -> Capabilities:
    """Return the record of the vehicle on an open ``link`` (protocol and supported PIDs as
    the link found them at connect), its ``vin`` decoded offline."""
    vehicle = identify(vin, link.protocol_id)
    return Capabilities(
        vin=vin,
        protocol_id=link.protocol_id,
        protocol_name=link.protocol_name,
        supported_pids=sorted(link.supported_pids - _BITMAP_PIDS),
        adapter=link.identity,
        make=vehicle.make,
        model_years=vehicle.model_years,
        can_ids=sorted(set(can_ids)),
        ecus=link.responders,
        timing=timing,
        profile=profile,
        profile_version=profile_version,
        battery_v=link.battery_v,
        found_ms=int(time.time() * 1000),
    )


class CapabilityStore:
    """The capability records on this device, in the SQLite file ``path``; thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CapabilityStoreError(
                f"{self.path}: cannot open the vehicle record: {exc}"
            ) from exc

    def save(self, record: Capabilities) -> bool:
        """Store ``record`` (replacing the same vehicle's); return True when it is a vehicle
        this device had not seen before.

        Raises:
            CapabilityStoreError: the file cannot be written.
        """
        now_ms = int(time.time() * 1000)
        with self._lock:
            try:
                seen = self._db.execute(
                    "SELECT 1 FROM vehicles WHERE key = ?", (record.key,)
                ).fetchone()
                self._db.execute(
                    "INSERT INTO vehicles (key, record, first_seen_ms, last_seen_ms) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "record = excluded.record, last_seen_ms = excluded.last_seen_ms",
                    (record.key, record.to_json(), now_ms, now_ms),
                )
            except sqlite3.Error as exc:
                raise CapabilityStoreError(f"{self.path}: cannot store the record: {exc}") from exc
        return seen is None

    def latest(self) -> Capabilities | None:
        """Return the record of the vehicle seen last, or None when there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM vehicles ORDER BY last_seen_ms DESC, rowid DESC LIMIT 1"
            ).fetchone()
        return None if row is None else Capabilities.from_json(row[0])

    def close(self) -> None:
        """Close the file; never raises."""
        with self._lock:
            self._db.close()
