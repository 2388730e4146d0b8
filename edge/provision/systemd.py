"""Installing the agent's systemd unit (``deploy/edge/fleetlink-edge.service``) and starting it."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from fleetlink.edge.provision import ProvisionError

UNIT_NAME = "fleetlink-edge.service"
UNIT_DIR = Path("/etc/systemd/system")

UNIT_TEMPLATE = """\
[Unit]
Description=Fleetlink edge agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={fleetlink} edge run --config {config} --log-json
# The agent does not exit on a bad outbox (it moves it aside) or a full seq space; a restart is
# for the unforeseen, so back off instead of looping every 2 s.
Restart=on-failure
RestartSec=10
User=fleetlink
SupplementaryGroups=dialout
StateDirectory=fleetlink

[Install]
WantedBy=multi-user.target
"""


def render_unit(config: Path, fleetlink: str = "/usr/local/bin/fleetlink") -> str:
    """Return the unit's text for a configuration file and a ``fleetlink`` executable."""
    return UNIT_TEMPLATE.format(fleetlink=fleetlink, config=config)


def systemd_running() -> bool:
    """Return True where systemd is the init system and systemctl exists."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


SERVICE_USER = "fleetlink"


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ProvisionError(
            f"{' '.join(command)} failed: {done.stderr.strip() or done.returncode}"
        )


def give_to_service_user(paths: list[Path]) -> None:
    """Make the unit's user (created as a system user in group dialout if missing) own
    ``paths``: the agent runs as that user and must read its secrets and write its state."""
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--groups", "dialout", SERVICE_USER])
        entry = pwd.getpwnam(SERVICE_USER)
    for path in paths:
        for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


def install_unit(config: Path, owned: list[Path], unit_dir: Path = UNIT_DIR) -> Path:
    """Give ``owned`` to the service user, write the unit, enable it and start it now;
    return the unit's path.

    Raises:
        ProvisionError: systemd is not running here, or a command failed.
    """
    if not systemd_running():
        raise ProvisionError(
            "systemd is not running on this machine, so the service was not installed; start "
            f"the agent yourself: fleetlink edge run --config {config} (or rerun with "
            "--no-systemd to skip this step)"
        )
    try:
        give_to_service_user(owned)
    except OSError as exc:
        raise ProvisionError(f"cannot hand the files to user {SERVICE_USER}: {exc}") from None
    executable = shutil.which("fleetlink") or f"{sys.executable} -m fleetlink"
    path = unit_dir / UNIT_NAME
    try:
        path.write_text(render_unit(config, executable), encoding="utf-8")
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot write: {exc.strerror} (run as root)") from None
    _run(["systemctl", "daemon-reload"])
    _run(["systemctl", "enable", "--now", UNIT_NAME])
    return path
