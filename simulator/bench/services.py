"""The services a benchmark starts for itself, in processes of their own: a mosquitto from the
installed binary with the per-client windows docs/observability.md recommends, and
``fleetlink cloud ingest --processes K`` (the deployed shape of the ingest)."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

# Per-client windows large enough that acking after commit still fills the pipe
# (docs/observability.md "Broker settings"); no persistence: the bench measures the path.
TUNED_MOSQUITTO = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 100000
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float) -> None:
    """Return once something accepts on 127.0.0.1:``port``; raise TimeoutError after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")
        time.sleep(0.05)


def children(parent: int) -> list[int]:
    """Return the pids whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def ready(port: int) -> bool:
    """Return True if the process on ``port`` answers ``/readyz`` with 200.

    A probe of a port nobody listens on yet can connect to itself (Linux allows it when the
    kernel happens to pick that very port as the probe's source) and then reads its own request
    back: that, like a refused connection, means "not ready".
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, http.client.HTTPException):
        return False


@contextlib.contextmanager
def tuned_mosquitto() -> Iterator[tuple[str, int]]:
    """Run a mosquitto with ``TUNED_MOSQUITTO`` on a free port; yield its URL and pid.

    Raises FileNotFoundError if mosquitto is not installed, TimeoutError if it does not listen.
    """
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(TUNED_MOSQUITTO.format(port=port))
        broker = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            wait_port(port, 10)
            yield f"mqtt://127.0.0.1:{port}", broker.pid
        finally:
            broker.terminate()
            broker.wait(timeout=10)


@contextlib.contextmanager
def ingest_processes(
    dsn: str, mqtt_url: str, count: int, extra_env: dict[str, str] | None = None
) -> Iterator[list[int]]:
    """Run ``fleetlink cloud ingest --processes count`` on ``dsn`` (already migrated) until
    every process is ready; yield the pids of the processes that ingest.

    Raises TimeoutError if they are not ready within 60 s.
    """
    metrics_port = free_port()
    env = {
        **os.environ,
        "FLEETLINK_MODE": "demo",
        "FLEETLINK_DATABASE_URL": dsn,
        "FLEETLINK_MQTT_URL": mqtt_url,
        "FLEETLINK_INGEST_METRICS_PORT": str(metrics_port),
        "FLEETLINK_MQTT_CLIENT_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "FLEETLINK_MQTT_SHARE_GROUP": f"bench-{uuid.uuid4().hex[:6]}",
        "FLEETLINK_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "fleetlink", "cloud", "ingest", "--processes", str(count)]
    ingest = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while not all(ready(metrics_port + i) for i in range(count)):
            if time.monotonic() > deadline or ingest.poll() is not None:
                raise TimeoutError("the ingest processes did not become ready in 60 s")
            time.sleep(0.2)
        yield children(ingest.pid) if count > 1 else [ingest.pid]
    finally:
        ingest.send_signal(signal.SIGTERM)
        try:
            ingest.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ingest.kill()
