"""Applying the cloud's signed updates (configuration, firmware profile, model) on the device.

An update arrives on the device's ``cmd`` topic (``shared/updates.py``). The device applies a
command id once; it refuses, with a reason, one that is not for it, not signed by the cloud's
update key, or whose content is not the signed SHA-256 (tampered or truncated), and one whose
content does not load (a profile that does not validate, a model that is not a TFLite file,
a configuration that is not valid). An accepted update is written beside the previous one and
switched to atomically (``active.json``); the agent then restarts into it, and if it fails to
start the previous one is switched back ("rolled_back"). The outcome goes to the cloud as an
``update_result`` event on the acked events path; the versions run are in the status message.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from fleetlink.edge.config import ConfigError, DeviceConfig, UpdatesSection, parse_config
from fleetlink.firmware_profiles import ProfileError, load_profile
from fleetlink.shared.codec import CodecError, decode, encode
from fleetlink.shared.messages import Event, EventBatch
from fleetlink.shared.updates import UpdateCommand, public_key, refusal

log = logging.getLogger(__name__)

Outcome = Literal["applied", "refused", "rolled_back"]
ACTIVE = "active.json"
_TFLITE_MAGIC = b"TFL3"
_SUFFIX = {"config": ".toml", "profile": ".toml", "model": ".tflite"}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_active(settings: UpdatesSection) -> dict[str, Any]:
    """Return what the updates folder says is active: ``{"profile": {"path", "version"}, …,
    "applied": [command ids], "trial": {…} or absent}``."""
    path = settings.dir / ACTIVE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"applied": []}
    except (OSError, ValueError) as exc:
        log.error("%s: unreadable (%s); running without updates", path, exc)
        return {"applied": []}
    return data if isinstance(data, dict) else {"applied": []}


def _save_active(settings: UpdatesSection, active: dict[str, Any]) -> None:
    _write_atomic(settings.dir / ACTIVE, json.dumps(active, indent=2).encode())


def pushed_config(config: DeviceConfig, data: dict[str, Any], source: str) -> DeviceConfig:
    """Return the pushed configuration ``data`` in force on this device: its identity, broker
    login, outbox and updates sections stay the device's own.

    Raises:
        ConfigError: the pushed configuration is not valid.
    """
    data = {k: v for k, v in data.items() if k not in ("device", "mqtt", "updates", "outbox")}
    data["device"] = {"id": config.device.id, "tenant": config.device.tenant}
    data["outbox"] = {"path": str(config.outbox.path)}
    pushed = parse_config(data, source=source)
    return pushed.model_copy(
        update={
            "device": config.device,
            "mqtt": config.mqtt,
            "updates": config.updates,
            "outbox": config.outbox,
        }
    )


def apply_active(config: DeviceConfig) -> DeviceConfig:
    """Return ``config`` with the active updates in force: a pushed configuration replaces the
    file's (identity and secrets kept), a pushed profile replaces ``obd.profile``.

    Raises:
        ConfigError: the active configuration or profile is not valid.
        OSError: an active file cannot be read.
    """
    if config.updates is None:
        return config
    active = read_active(config.updates)
    pushed = active.get("config")
    if pushed:
        try:
            data = tomllib.loads(Path(pushed["path"]).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{pushed['path']}: {exc}") from None
        config = pushed_config(config, data, pushed["path"])
    profile = active.get("profile")
    if profile and config.obd is not None:
        try:
            load_profile(profile["path"])
        except ProfileError as exc:
            raise ConfigError(f"{profile['path']}: {exc}") from None
        config = config.model_copy(
            update={"obd": config.obd.model_copy(update={"profile": profile["path"]})}
        )
    return config


def running_versions(settings: UpdatesSection | None) -> dict[str, str]:
    """Return the version of each updated part, for the status message."""
    if settings is None:
        return {}
    active = read_active(settings)
    return {
        kind: str(active[kind]["version"])
        for kind in ("config", "profile", "model")
        if isinstance(active.get(kind), dict)
    }


def _content_refusal(command: UpdateCommand, content: bytes, config: DeviceConfig) -> str | None:
    """Return why the content cannot run, or None ("fails to start" caught before the swap)."""
    if command.kind == "model":
        if content[4:8] != _TFLITE_MAGIC:
            return "the model is not a TFLite flatbuffer (no TFL3 identifier)"
        return None
    try:
        text = content.decode("utf-8")
        data = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return f"the {command.kind} is not TOML: {exc}"
    if command.kind == "profile":
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(text)
        try:
            load_profile(f.name)
        except ProfileError as exc:
            return f"the profile does not load: {str(exc).replace(f.name, 'profile')}"
        finally:
            os.unlink(f.name)
        return None
    try:
        pushed_config(config, data, "pushed config")
    except (ConfigError, ValidationError) as exc:
        return str(exc)[:256]
    return None


class Updater:
    """Handles update commands for one device; ``result_event`` builds what to report."""

    def __init__(self, config: DeviceConfig) -> None:
        if config.updates is None:
            raise ValueError("no [updates] section")
        self.settings = config.updates
        self.device_id = config.device.id
        self.config = config
        self.key = public_key(config.updates.public_key)

    def handle(self, payload: bytes) -> tuple[UpdateCommand | None, Outcome, str] | None:
        """Check and stage one command; return (command, outcome, reason), or None for a
        command already handled (the retained command seen again after a reconnect).

        "applied" here means staged and switched to: the caller restarts into it.
        """
        try:
            command = decode(payload, UpdateCommand)
        except CodecError as exc:
            return None, "refused", f"malformed update: {exc}"[:256]
        active = read_active(self.settings)
        if str(command.command_id) in active.get("applied", []):
            return None
        reason = refusal(self.key, command, self.device_id)
        if reason is None:
            reason = _content_refusal(command, command.content(), self.config)
        if reason is not None:
            self._remember(active, command)
            log.warning("update %s refused: %s", command.command_id, reason)
            return command, "refused", reason
        target = self.settings.dir / command.kind / f"{command.version}{_SUFFIX[command.kind]}"
        _write_atomic(target, command.content())
        previous = active.get(command.kind)
        active[command.kind] = {"path": str(target), "version": command.version}
        active["trial"] = {
            "command_id": str(command.command_id),
            "kind": command.kind,
            "version": command.version,
            "previous": previous,
        }
        self._remember(active, command)
        log.info(
            "update %s: %s %s switched to; restarting",
            command.command_id,
            command.kind,
            command.version,
        )
        return command, "applied", ""

    def _remember(self, active: dict[str, Any], command: UpdateCommand) -> None:
        applied = [*active.get("applied", []), str(command.command_id)][-100:]
        active["applied"] = applied
        _save_active(self.settings, active)


def settle_trial(settings: UpdatesSection, started: bool, why: str = "") -> dict[str, str] | None:
    """After a restart into an update: keep it if the agent ``started``, else switch the
    previous one back. Return the result to report (None without an update on trial)."""
    active = read_active(settings)
    trial = active.pop("trial", None)
    if not isinstance(trial, dict):
        return None
    if not started:
        kind = trial["kind"]
        if trial.get("previous"):
            active[kind] = trial["previous"]
        else:
            active.pop(kind, None)
    _save_active(settings, active)
    return {
        "command_id": trial["command_id"],
        "kind": trial["kind"],
        "version": trial["version"],
        "outcome": "applied" if started else "rolled_back",
        "reason": "" if started else why[:256],
    }


def result_event(result: dict[str, str]) -> Event:
    """Return the ``update_result`` event reporting ``result``."""
    return Event(
        id=uuid.uuid4(),
        time_ms=int(time.time() * 1000),
        type="update_result",
        severity="info" if result["outcome"] == "applied" else "warning",
        data=dict(result),
    )


def event_payload(device_id: str, events: list[Event]) -> Any:
    """Return a builder of the events batch for ``Outbox.add`` (it supplies the seq)."""

    def build(seq: int) -> bytes:
        return encode(EventBatch(device_id=device_id, seq=seq, events=events))

    return build
