"""Writing the device's configuration: ``device.toml`` (no secrets) and, beside it, the
secrets file (the broker password and the device key) with mode 0600.

Both are validated together before either is written; the secrets file is written first and
the configuration last, each atomically, so a device either has the old configuration (or
none) or the whole new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleetlink.edge.config import ConfigError, DeviceConfig, load_config, parse_config
from fleetlink.edge.provision import ProvisionError
from fleetlink.edge.provision.state import write_private
from fleetlink.shared.enrollment import EnrollResponse

SECRETS_NAME = "device.secrets.toml"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    # A JSON string is a TOML basic string, once astral characters stay whole (TOML has no
    # surrogate escapes) and DEL is escaped (TOML forbids it raw).
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def render_toml(data: dict[str, Any], header: str = "") -> str:
    """Return ``data`` (top-level keys, then one level of tables) as TOML text."""
    lines = [f"# {line}" for line in header.splitlines()]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines += [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"{k} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def config_data(
    enrolled: EnrollResponse,
    api_url: str,
    state_dir: Path,
    obd_port: str | None,
    baudrate: int | None,
    profile: str,
    gps: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the configuration and the secrets, as TOML-shaped dicts."""
    data: dict[str, Any] = {
        "secrets_file": SECRETS_NAME,
        "device": {"id": enrolled.device_id, "tenant": enrolled.tenant},
        "mqtt": {"url": enrolled.mqtt_url, "username": enrolled.mqtt_username},
        "outbox": {"path": str(state_dir / "outbox.db")},
        "cloud": {"api_url": api_url},
    }
    if obd_port is not None:
        data["obd"] = {"port": obd_port, "baudrate": baudrate, "profile": profile}
    if gps:
        data["gps"] = gps
    if enrolled.update_public_key:
        data["updates"] = {
            "public_key": enrolled.update_public_key,
            "dir": str(state_dir / "updates"),
        }
    secrets = {
        "device": {"key": enrolled.device_key},
        "mqtt": {"password": enrolled.mqtt_password},
    }
    return data, secrets


def write_device_files(
    config_path: Path, data: dict[str, Any], secrets: dict[str, Any]
) -> DeviceConfig:
    """Validate, then write the secrets file and the configuration; return it as loaded.

    Raises:
        ProvisionError: the result would not be valid, or a file cannot be written.
    """
    merged = {k: v for k, v in data.items() if k != "secrets_file"}
    for section, values in secrets.items():
        merged[section] = {**merged.get(section, {}), **values}
    try:
        parse_config(merged, source=str(config_path))
    except ConfigError as exc:
        raise ProvisionError(f"the configuration would not be valid: {exc}") from None
    header = (
        "Written by `fleetlink edge provision`; check it with: fleetlink edge check-config "
        f"{config_path}\nSecrets (broker password, device key) are in {SECRETS_NAME}, mode 0600."
    )
    try:
        write_private(config_path.parent / SECRETS_NAME, render_toml(secrets))
        write_private(config_path, render_toml(data, header))
        config_path.chmod(0o644)
        return load_config(config_path)
    except OSError as exc:
        raise ProvisionError(f"cannot write {config_path}: {exc.strerror}") from None
    except ConfigError as exc:
        raise ProvisionError(f"the written configuration does not load: {exc}") from None
