"""Run several ingest processes on one shared subscription and keep them running.

Each child is ``fleetlink cloud ingest --processes 1`` with its own client id
(``<base>-p<i>``) and metrics port (``FLEETLINK_INGEST_METRICS_PORT + i``). A child that exits
unexpectedly is started again after a second; SIGTERM/SIGINT stop all of them. Several
processes need a shared subscription: on a broker without MQTT v5 one process runs, with a
warning, because each plain subscriber would receive (and store once, but decode and ack)
every message.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from fleetlink.cloud.ingest.protocol import (
    broker_offers_mqtt5,
    parse_mqtt_url,
    plan_subscription,
)
from fleetlink.cloud.settings import CloudSettings

log = logging.getLogger(__name__)


def process_count(settings: CloudSettings, asked: int) -> int:
    """Return how many ingest processes to run: ``asked``, or 1 without a shared subscription.

    Raises OSError if the broker cannot be reached, IngestConfigError if the settings demand
    a shared subscription the broker cannot give.
    """
    if asked <= 1:
        return 1
    address = parse_mqtt_url(settings.mqtt_url.get_secret_value())
    plan = plan_subscription(
        settings.shared_subscription, broker_offers_mqtt5(address), settings.mqtt_share_group
    )
    if not plan.shared:
        log.warning(
            "%d ingest processes asked, but the broker offers no shared subscription "
            "(MQTT v5); running one",
            asked,
        )
        return 1
    return asked


def child_environment(settings: CloudSettings, index: int) -> dict[str, str]:
    """Return the environment of child ``index``: its client id and metrics port."""
    base = settings.mqtt_client_id or f"fleetlink-ingest-{socket.gethostname()}"
    port = settings.ingest_metrics_port
    return {
        **os.environ,
        "FLEETLINK_MQTT_CLIENT_ID": f"{base}-p{index}",
        "FLEETLINK_INGEST_METRICS_PORT": str(port + index if port else 0),
    }


def supervise(settings: CloudSettings, count: int) -> int:
    """Run ``count`` children until SIGTERM/SIGINT; return the exit status (0 when stopped)."""
    command = [sys.executable, "-m", "fleetlink", "cloud", "ingest", "--processes", "1"]
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        children[index] = subprocess.Popen(command, env=child_environment(settings, index))
    log.info("started %d ingest processes: %s", count, [c.pid for c in children.values()])
    while not stopping:
        time.sleep(0.5)
        for index, child in list(children.items()):
            if child.poll() is not None and not stopping:
                log.error(
                    "ingest process %d (pid %d) exited with %s; starting it again",
                    index,
                    child.pid,
                    child.returncode,
                )
                time.sleep(1)
                children[index] = subprocess.Popen(command, env=child_environment(settings, index))
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
