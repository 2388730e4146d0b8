"""Services a chaos run owns and may crash: a PostgreSQL cluster, a mosquitto broker, the cloud.

Each listens on its own loopback port and keeps its files in the run's temporary directory, so a
run never touches the machine's own services.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class ServiceError(RuntimeError):
    """Raised when a service the run owns cannot be started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServiceError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def _postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not found:
        raise ServiceError("no PostgreSQL server in /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


class OwnedPostgres:
    """A throwaway PostgreSQL cluster (initdb in ``root``) on its own port, trust auth.

    PostgreSQL refuses to run as root: then the cluster runs as the ``postgres`` user.
    """

    def __init__(self, root: Path) -> None:
        self.bin = _postgres_bin()
        self.data = root / "pgdata"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pwd.getpwnam(self.user)  # KeyError: no such user

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=self.user,
            cwd="/",
        )

    def init(self) -> None:
        self.data.mkdir(parents=True)
        if self.user is not None:
            shutil.chown(self.data, self.user)
            shutil.chown(self.data.parent, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\nfsync = on\nmax_connections = 60\n"
                "shared_buffers = 64MB\n"
            )

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data / "server.log"),
            "start",
        )

    def crash_restart(self) -> None:
        """Stop at once, as a crash would (``immediate``: no checkpoint), and start again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class OwnedMosquitto:
    """A mosquitto with persistence in ``root``, anonymous on its own loopback port."""

    def __init__(self, root: Path) -> None:
        self.root = root / "mosquitto"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and _has_user("mosquitto"):  # mosquitto drops root for this user
            shutil.chown(self.root, "mosquitto")
        conf = self.root / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.root}/\nautosave_interval 5\n"
            "max_queued_messages 100000\nmax_inflight_messages 100\n"
            f"log_dest file {self.root}/mosquitto.log\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def restart(self) -> None:
        """Stop (SIGTERM: it writes its persistence file) and start again on the same port."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class CloudProcess:
    """``fleetlink cloud serve`` as a child process, killed with SIGKILL when asked."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = int(env["FLEETLINK_HTTP_PORT"])

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetlink", "cloud", "serve"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
