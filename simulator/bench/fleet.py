"""``fleetlink bench fleet``: the largest fleet the ingest sustains at one batch per 10 s.

Everything runs on this machine, in processes of its own: a mosquitto started from the
installed binary with a tuned configuration (``services.TUNED_MOSQUITTO``), ``fleetlink
cloud ingest --processes K`` on a scratch database (created and dropped here), and ``sim
fleet``'s load generator. The fleet grows step by step; a step is sustained when every
device's hello was answered, at least 95 % of the offered messages were acked within the
window and the ack P99 stayed under ``--p99-ms``. It stops at the first step that is not
sustained.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from typing import Annotated

import asyncpg
import typer

from fleetlink.cloud.db.migrate import migrate
from fleetlink.simulator.bench import services
from fleetlink.simulator.fleet_load.cpu import pids_named
from fleetlink.simulator.fleet_load.process import LoadPlan
from fleetlink.simulator.fleet_load.provision import device_ids, provision
from fleetlink.simulator.fleet_load.run import FleetReport, run_fleet

TENANT = "fleetbench"
PREFIX = "fb-"


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
    ingest_count: int,
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
    name = f"fleetlink_fleet_{uuid.uuid4().hex[:10]}"
    dsn = asyncio.run(_database(admin_url, name))
    reports: list[FleetReport] = []
    largest = 0
    try:
        with (
            services.tuned_mosquitto() as (mqtt_url, broker_pid),
            services.ingest_processes(
                dsn,
                mqtt_url,
                ingest_count,
                {"FLEETLINK_INGEST_MAX_BATCHES": "1000", "FLEETLINK_INGEST_QUEUE_SIZE": "4000"},
            ) as ingest_pids,
        ):

            def components() -> dict[str, list[int]]:
                return {
                    "ingest": ingest_pids,
                    "broker": [broker_pid],
                    "postgres (all on this machine)": pids_named("postgres"),
                }

            for vehicles in steps:
                asyncio.run(_provision(dsn, vehicles))
                plan = LoadPlan(
                    mqtt_url,
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
