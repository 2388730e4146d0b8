"""The geofences the cloud pushed to this device, kept in a JSON file beside the outbox.

The cloud sends the tenant's whole fence set with a version on the device's ``fences`` topic;
the store keeps the newest version it has seen (an older or repeated set changes nothing) and
writes it atomically, so a power cut leaves either the old file or the new one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import ValidationError

from fleetlink.shared.messages import GeofenceSet

log = logging.getLogger(__name__)


class FenceStore:
    """The device's copy of its tenant's geofences."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: GeofenceSet | None = self._load()

    def _load(self) -> GeofenceSet | None:
        try:
            return GeofenceSet.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.warning("ignoring the stored geofences in %s: %s", self.path, exc)
            return None

    @property
    def version(self) -> int:
        return self.current.version if self.current is not None else -1

    def apply(self, fence_set: GeofenceSet) -> bool:
        """Keep ``fence_set`` if it is newer than the stored one; return whether it was."""
        if fence_set.version <= self.version:
            return False
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(fence_set.model_dump_json(), encoding="utf-8")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        self.current = fence_set
        log.info("stored %d geofence(s), version %d", len(fence_set.fences), fence_set.version)
        return True


def fence_path(outbox_path: Path) -> Path:
    """Return where the fences live: beside the outbox database."""
    return outbox_path.with_name("geofences.json")
