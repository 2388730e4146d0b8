"""``fleetlink bench fleet``: the largest fleet the ingest sustains at one batch per 10 s.

Everything runs on this machine, in processes of its own: a mosquitto started from the
installed binary with a tuned configuration (``TUNED_MOSQUITTO``), ``fleetlink cloud ingest
--processes K`` on a scratch database (created and dropped here), and ``sim fleet``'s load
generator. The fleet grows step by step; a step is sustained when every device's hello was
answered, at least 95 % of the offered messages were acked within the window and the ack
P99 stayed under ``--p99-ms``. It stops at the first step that is not sustained.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

from fleetlink.cloud.db.migrate import migrate
from fleetlink.simulator.fleet_load.cpu import pids_named
from fleetlink.simulator.fleet_load.process import LoadPlan
from fleetlink.simulator.fleet_load.provision import device_ids, provision
from fleetlink.simulator.fleet_load.run import FleetReport, run_fleet

# Per-client windows large enough that acking after commit still fills the pipe
# (docs/observability.md "Broker settings"); no persistence: the bench measures the path.
TUNED_MOSQUITTO = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 100000
"""
TENANT = "fleetbench"
PREFIX = "fb-"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")
        time.sleep(0.05)


def _children(parent: int) -> list[int]:
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


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def _database(admin_url: str, name: str) -> str:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


async def _provision(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await provision(conn, TENANT, device_ids(PREFIX, count))
    finally:
        await conn.close()


async def _drop(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def run_steps(
    steps: list[int],
    admin_url: str,
    ingest_processes: int,
    load_processes: int,
    duration_s: float,
    warmup_s: float,
    p99_ms: float,
    echo: Callable[[str], object] = print,
) -> tuple[int, list[FleetReport]]:
    """Run the steps; return the largest sustained fleet (0 if none) and every report.

    Raises FileNotFoundError if mosquitto is not installed, TimeoutError if the broker or
    the ingest does not come up.
    """
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
    name = f"fleetlink_fleet_{uuid.uuid4().hex[:10]}"
    dsn = asyncio.run(_database(admin_url, name))
    reports: list[FleetReport] = []
    largest = 0
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(TUNED_MOSQUITTO.format(port=port))
        broker = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        metrics_port = _free_port()
        env = {
            **os.environ,
            "FLEETLINK_MODE": "demo",
            "FLEETLINK_DATABASE_URL": dsn,
            "FLEETLINK_MQTT_URL": f"mqtt://127.0.0.1:{port}",
            "FLEETLINK_INGEST_METRICS_PORT": str(metrics_port),
            "FLEETLINK_MQTT_CLIENT_ID": f"fleetbench-{uuid.uuid4().hex[:6]}",
            "FLEETLINK_INGEST_MAX_BATCHES": "1000",
            "FLEETLINK_INGEST_QUEUE_SIZE": "4000",
            "FLEETLINK_LOG_LEVEL": "WARNING",
        }
        ingest = None
        try:
            _wait_port(port, 10)
            command = [sys.executable, "-m", "fleetlink", "cloud", "ingest", "--processes"]
            ingest = subprocess.Popen([*command, str(ingest_processes)], env=env)
            deadline = time.monotonic() + 60
            while not all(_ready(metrics_port + i) for i in range(ingest_processes)):
                if time.monotonic() > deadline or ingest.poll() is not None:
                    raise TimeoutError("the ingest processes did not become ready in 60 s")
                time.sleep(0.2)
            ingest_pids = _children(ingest.pid) if ingest_processes > 1 else [ingest.pid]
            components = {
                "ingest": ingest_pids,
                "broker": [broker.pid],
                "postgres (all on this machine)": pids_named("postgres"),
            }
            for vehicles in steps:
                asyncio.run(_provision(dsn, vehicles))
                plan = LoadPlan(
                    f"mqtt://127.0.0.1:{port}",
                    TENANT,
                    device_ids(PREFIX, vehicles),
                    period_s=10.0,
                    duration_s=duration_s,
                    warmup_s=warmup_s,
                    connections=4,
                )
                report = run_fleet(plan, load_processes, components)
                reports.append(report)
                ok = report.sustained(p99_ms)
                for line in report.lines():
                    echo(f"  {line}")
                echo(f"  -> {'sustained' if ok else 'NOT sustained'}")
                if not ok:
                    break
                largest = vehicles
        finally:
            if ingest is not None:
                ingest.send_signal(signal.SIGTERM)
                try:
                    ingest.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    ingest.kill()
            broker.terminate()
            broker.wait(timeout=10)
            asyncio.run(_drop(admin_url, name))
    return largest, reports


def main(
    steps: Annotated[
        str, typer.Option(help="Fleet sizes to try, in order, comma-separated")
    ] = "1000,2000,5000,10000,20000,50000,100000",
    ingest_processes: Annotated[
        int, typer.Option(min=1, help="Ingest processes (shared subscription)")
    ] = 2,
    load_processes: Annotated[int, typer.Option(min=1, help="Load generator processes")] = 1,
    duration: Annotated[float, typer.Option(min=5, help="Measured seconds per step")] = 30.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds before measuring")] = 10.0,
    p99_ms: Annotated[float, typer.Option(help="Ack P99 a sustained step stays under")] = 1000.0,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
) -> None:
    """Step the fleet up at one batch per 10 s; print each step and the largest sustained."""
    sizes = [int(s) for s in steps.split(",") if s.strip()]
    typer.echo(
        f"fleet steps {sizes}, {ingest_processes} ingest process(es), {load_processes} load "
        f"process(es), {os.cpu_count()} CPUs, {duration:g} s measured per step"
    )
    largest, _ = run_steps(
        sizes, admin_url, ingest_processes, load_processes, duration, warmup, p99_ms, typer.echo
    )
    typer.echo(f"largest fleet sustained (ack P99 < {p99_ms:g} ms): {largest:,} vehicles")
