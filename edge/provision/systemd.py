"""Installing the agent's systemd unit (``deploy/edge/fleetlink-edge.service``) and starting it."""

from __future__ import annotations

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


def install_unit(config: Path, unit_dir: Path = UNIT_DIR) -> Path:
    """Write the unit, enable it and start it now; return the unit's path.

    Raises:
        ProvisionError: systemd is not running here, or a systemctl command failed.
    """
    if not systemd_running():
        raise ProvisionError(
            "systemd is not running on this machine, so the service was not installed; start "
            f"the agent yourself: fleetlink edge run --config {config} (or rerun with "
            "--no-systemd to skip this step)"
        )
    executable = shutil.which("fleetlink") or f"{sys.executable} -m fleetlink"
    path = unit_dir / UNIT_NAME
    try:
        path.write_text(render_unit(config, executable), encoding="utf-8")
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot write: {exc.strerror} (run as root)") from None
    for command in (["daemon-reload"], ["enable", "--now", UNIT_NAME]):
        done = subprocess.run(
            ["systemctl", *command], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise ProvisionError(
                f"systemctl {' '.join(command)} failed: {done.stderr.strip() or done.returncode}"
            )
    return path
