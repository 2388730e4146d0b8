"""A mosquitto of our own that requires logins, for the tests of per-device broker identity:
the password file and ACL the cloud writes, a pid file for its SIGHUP reload."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetlink.cloud.broker_identity import write_files
from tests.conftest import _port_open, free_port
from tests.waiting import wait_until

INGEST_PASSWORD = "Ingest-Pw-7731"


@dataclass(frozen=True)
class AuthBroker:
    port: int
    folder: Path

    @property
    def service_url(self) -> str:
        return f"mqtt://ingest:{INGEST_PASSWORD}@127.0.0.1:{self.port}"

    def files(self) -> dict[str, Path]:
        """The CloudSettings fields that make the cloud write and reload this broker's files."""
        return {
            "broker_passwd_file": self.folder / "passwd",
            "broker_acl_file": self.folder / "acl",
            "broker_service_passwd_file": self.folder / "passwd.service",
            "broker_pid_file": self.folder / "mosquitto.pid",
        }


@contextlib.contextmanager
def auth_broker() -> Iterator[AuthBroker]:
    """Start mosquitto on a loopback port with only the ingest's login; yield it."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd_exe = shutil.which("mosquitto_passwd")
    if not Path(exe).exists() or passwd_exe is None:
        pytest.fail("mosquitto and mosquitto_passwd must be installed")
    with tempfile.TemporaryDirectory(prefix="fl-auth-") as name:
        tmp = Path(name)
        tmp.chmod(0o777)  # mosquitto started as root reads the files as its own user
        service = tmp / "passwd.service"
        subprocess.run(
            [passwd_exe, "-c", "-b", str(service), "ingest", INGEST_PASSWORD], check=True
        )
        write_files([], tmp / "passwd", tmp / "acl", "ingest", service)
        port = free_port()
        (tmp / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {tmp}/passwd\nacl_file {tmp}/acl\npid_file {tmp}/mosquitto.pid\n"
            "persistence false\n"
        )
        log = tmp / "log"
        proc = subprocess.Popen(
            [exe, "-c", str(tmp / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        try:
            wait_until(lambda: _port_open("127.0.0.1", port) or proc.poll() is not None, 10)
            assert proc.poll() is None, log.read_text()
            yield AuthBroker(port, tmp)
        finally:
            proc.terminate()
            proc.wait(10)
