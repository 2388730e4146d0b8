"""``fleetlink cloud serve --processes N``: the API served by N processes on one port.

Each process is a ``fleetlink cloud serve`` of its own, listening with ``SO_REUSEPORT`` so the
kernel spreads new connections over them. The first also runs the ingest and the background
jobs; the others serve the API only. Live messages reach every process's clients through
PostgreSQL NOTIFY (``live_relay = "postgres"``, see ``fleetlink.cloud.live.relay``).

The processes stand or fall together: when one exits, the others are stopped and this command
exits with its status, so the service manager (systemd, Kubernetes) restarts the whole set.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

log = logging.getLogger(__name__)

_STOP_WAIT_S = 15.0


class ReplicaError(ValueError):
    """The replicas cannot be started with these options."""


def replica_environments(base: Mapping[str, str], processes: int) -> list[dict[str, str]]:
    """Return each process's environment: all relay live messages; only the first ingests and
    runs the background jobs.

    Raises:
        ReplicaError: ``processes`` is below 2.
    """
    if processes < 2:
        raise ReplicaError("--processes must be 2 or more to start replicas")
    environments = []
    for index in range(processes):
        env = dict(base, FLEETLINK_LIVE_RELAY="postgres")
        if index > 0:
            env.update(FLEETLINK_INGEST_WORKERS="0", FLEETLINK_BACKGROUND_JOBS="false")
        environments.append(env)
    return environments


def run_replicas(host: str, port: int, processes: int) -> int:
    """Start the processes, wait until one exits or a stop signal arrives; return the status.

    Raises:
        ReplicaError: port 0 (each process would get a port of its own) or fewer than 2
            processes.
    """
    if port == 0:
        raise ReplicaError("--processes needs a fixed --port: every process listens on it")
    command = [
        sys.executable,
        "-m",
        "fleetlink",
        "cloud",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--reuse-port",
    ]
    children = [
        subprocess.Popen(command, env=env) for env in replica_environments(os.environ, processes)
    ]
    log.info("serving on %s:%d with %d processes", host, port, processes)
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = None
        while status is None:
            for child in children:
                code = child.poll()
                if code is not None:
                    status = code
                    if not stopping:
                        log.error(
                            "API process %d exited with status %d; stopping the others",
                            child.pid,
                            code,
                        )
                    break
            else:
                time.sleep(0.2)
        _stop_all(children)
        return 0 if stopping else (status or 1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + _STOP_WAIT_S
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
