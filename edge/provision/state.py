"""The provisioning state file: what each finished step found, so that a rerun continues
where the last run stopped (an enrollment is never repeated: its token is used up).

It holds the enrollment's secrets until the configuration is written, so it is written
atomically with mode 0600; once provisioning is complete the secrets are dropped from it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fleetlink.edge.provision import ProvisionError

STATE_FILE = "provision.json"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (no moment with wider access)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ProvisionState:
    """Step results by name, saved after every step."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE
        self.steps: dict[str, Any] = {}
        if self.path.exists():
            try:
                self.steps = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ProvisionError(
                    f"{self.path}: cannot read the provisioning state ({exc}); move it aside "
                    "to start over"
                ) from None

    def done(self, step: str) -> bool:
        return step in self.steps

    def get(self, step: str) -> Any:
        return self.steps.get(step)

    def save(self, step: str, result: Any) -> None:
        """Record ``step`` as done with ``result`` and write the file."""
        self.steps[step] = result
        try:
            write_private(self.path, json.dumps(self.steps, indent=2))
        except OSError as exc:
            raise ProvisionError(f"{self.path}: cannot write: {exc.strerror}") from None

    def forget_secrets(self) -> None:
        """Drop the enrollment's secrets (the configuration holds them now)."""
        enrolled = self.steps.get("enroll")
        if isinstance(enrolled, dict):
            for key in ("mqtt_password", "device_key"):
                enrolled.pop(key, None)
            self.save("enroll", enrolled)
