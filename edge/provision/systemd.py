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
Documentation=https://github.com/fleetlink/fleetlink/blob/main/docs/guides/edge.md
After=network-online.target
Wants=network-online.target
# Give up for a while after 5 failures in 5 minutes instead of restarting in a tight loop.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
# Type=notify: the agent says READY=1 once its outbox is open and its sources started, then
# WATCHDOG=1 from its main loop; a loop stuck for WatchdogSec gets the agent restarted.
Type=notify
NotifyAccess=main
WatchdogSec=30
ExecStart={fleetlink} edge run --config {config} --log-json
# The agent does not exit on a bad outbox (it moves it aside) or a full seq space; a restart is
# for the unforeseen (or a watchdog timeout), so back off instead of looping every 2 s.
Restart=on-failure
RestartSec=10
TimeoutStopSec=20

# The provisioning creates the system user fleetlink (systemd then uses it); without it,
# DynamicUser makes one for this service alone. The outbox lives in /var/lib/fleetlink
# (StateDirectory), which systemd creates and hands to that user. The OBD adapter is a serial
# port: dialout.
User=fleetlink
DynamicUser=yes
SupplementaryGroups=dialout
StateDirectory=fleetlink
StateDirectoryMode=0700
ConfigurationDirectory=fleetlink

# Everything else read-only or hidden.
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
# The adapter (/dev/ttyUSB*, /dev/rfcomm*) and SocketCAN need real devices; the rest is hidden.
DevicePolicy=closed
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-rfcomm rw
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
NoNewPrivileges=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
CapabilityBoundingSet=
# AF_CAN for SocketCAN, AF_NETLINK to find interfaces, AF_UNIX for the notify socket.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK AF_CAN
UMask=0077
{writable}
[Install]
WantedBy=multi-user.target
"""


_WRITABLE_BY_DEFAULT = (Path("/var/lib/fleetlink"),)


def render_unit(
    config: Path, fleetlink: str = "/usr/local/bin/fleetlink", writable: list[Path] | None = None
) -> str:
    """Return the unit's text for a configuration file and a ``fleetlink`` executable;
    ``writable`` directories outside the StateDirectory are opened to the agent
    (``ProtectSystem=strict`` keeps everything else read-only)."""
    extra = [
        p
        for p in writable or []
        if p.is_dir() and not any(p.is_relative_to(d) for d in _WRITABLE_BY_DEFAULT)
    ]
    lines = "".join(f"ReadWritePaths={p}\n" for p in extra)
    if any(p.is_relative_to("/home") or p.is_relative_to("/root") for p in extra):
        lines = lines + "ProtectHome=no\n"
    return UNIT_TEMPLATE.format(fleetlink=fleetlink, config=config, writable=lines)


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
        path.write_text(render_unit(config, executable, owned), encoding="utf-8")
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot write: {exc.strerror} (run as root)") from None
    _run(["systemctl", "daemon-reload"])
    _run(["systemctl", "enable", "--now", UNIT_NAME])
    return path
