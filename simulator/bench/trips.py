"""``fleetlink bench trips``: recomputing a day of a fleet's trips after late data, beside
computing that day the first time, in the same run.

In a scratch database (created and dropped here): one UTC day of ``vehicles`` vehicles, each
driving ``trips`` trips of ``trip_minutes`` at 1 Hz (speed, rpm, fuel rate), loaded by COPY and
marked the way the ingest marks what it writes. Each repetition then times

* first: every (vehicle, day) recomputed from nothing (trips, driving events, rollups);
* after late data: a late batch of 5 minutes lands for every vehicle (a trip nobody had seen)
  and every marked day is recomputed again.

``workers`` recompute loops run at once, as the recompute job of that many cloud processes
would. Medians of the repetitions are printed, with the trips found as a check.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
import typer

from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.ingest.partitions import DailyPartitions
from fleetlink.cloud.ingest.series import copy_samples
from fleetlink.cloud.registry import assign_device, create_device, create_tenant, create_vehicle
from fleetlink.cloud.trips.dirty import mark_dirty
from fleetlink.cloud.trips.recompute import FUEL_RATE, RPM, SPEED, recompute_marked

TENANT = "bench"
LATE_AT_S = 10 * 3600  # the late batch: 10:00-10:05, between the day's trips
LATE_S = 300


@dataclass(frozen=True)
class TripsBenchResult:
    vehicles: int
    samples: int
    first_runs: list[float]
    late_runs: list[float]
    trips_first: int
    trips_late: int

    @property
    def first_s(self) -> float:
        return statistics.median(self.first_runs)

    @property
    def late_s(self) -> float:
        return statistics.median(self.late_runs)


def _drive(n: int, start_s: int, seconds: int) -> list[tuple[int, float, float, float]]:
    """(second of day, speed, rpm, fuel l/h) of one drive: stop-and-go with a cruise."""
    rows = []
    for i in range(seconds):
        phase = (i + 37 * n) % 240
        speed = max(0.0, 55 + 45 * math.sin(i / 90 + n) - (60 if phase < 25 else 0))
        rows.append((start_s + i, round(speed, 2), 750 + 28 * speed, 0.7 + speed / 18))
    return rows


def _records(
    vehicle: uuid.UUID, device: str, day: datetime, rows: list[tuple[int, float, float, float]]
) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for second, speed, rpm, fuel in rows:
        ts = day + timedelta(seconds=second)
        out += [
            (TENANT, vehicle, device, SPEED, ts, speed),
            (TENANT, vehicle, device, RPM, ts, rpm),
            (TENANT, vehicle, device, FUEL_RATE, ts, fuel),
        ]
    return out


async def _drain(pool: asyncpg.Pool, workers: int) -> float:
    async def one() -> None:
        while await recompute_marked(pool, limit=50):
            pass

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(workers)))
    return time.perf_counter() - started


async def run_bench(
    admin_url: str,
    vehicles: int,
    trips: int,
    trip_minutes: int,
    repetitions: int,
    workers: int,
    echo: Callable[[str], None] = print,
) -> TripsBenchResult:
    """Run the benchmark and return its runs; the scratch database is always dropped."""
    admin = await asyncpg.connect(admin_url)
    name = f"fleetlink_bench_trips_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=workers + 1)
        try:
            return await _run(pool, vehicles, trips, trip_minutes, repetitions, workers, echo)
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _run(
    pool: asyncpg.Pool,
    vehicles: int,
    trips: int,
    trip_minutes: int,
    repetitions: int,
    workers: int,
    echo: Callable[[str], None],
) -> TripsBenchResult:
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    fleet: list[tuple[uuid.UUID, str]] = []
    samples = 0
    async with pool.acquire() as conn:
        await migrate(conn)
        await create_tenant(conn, TENANT)
        await DailyPartitions().ensure(conn, {day.date()})
        echo(f"loading {vehicles} vehicles x {trips} trips x {trip_minutes} min at 1 Hz ...")
        for n in range(vehicles):
            device = f"bench-{n:05d}"
            await create_device(conn, TENANT, device)
            vehicle = await create_vehicle(conn, TENANT, f"bench {n}")
            await assign_device(conn, device, vehicle, day - timedelta(days=1))
            rows = []
            for k in range(trips):
                # Trips start at 06:00, 11:00, 16:00, ...: the late batch at 10:00 is new.
                rows += _drive(n, 6 * 3600 + k * 5 * 3600, trip_minutes * 60)
            records = _records(vehicle, device, day, rows)
            samples += await copy_samples(conn, records)  # type: ignore[arg-type]
            fleet.append((vehicle, device))
        await conn.execute("ANALYZE sample_series, sample_points")
    days = [(TENANT, vehicle, day.date()) for vehicle, _ in fleet]
    first_runs: list[float] = []
    late_runs: list[float] = []
    trips_first = trips_late = 0
    late_start, late_end = (
        day + timedelta(seconds=LATE_AT_S),
        day + timedelta(seconds=LATE_AT_S + LATE_S),
    )
    for rep in range(repetitions):
        async with pool.acquire() as conn:
            for table in ("trips", "driving_events", "signal_rollups_1m", "signal_rollups_1h"):
                await conn.execute(f"TRUNCATE {table}")
            await conn.execute(
                "DELETE FROM sample_points WHERE ts >= $1 AND ts < $2", late_start, late_end
            )
            async with conn.transaction():
                await mark_dirty(conn, days)
        first_runs.append(await _drain(pool, workers))
        trips_first = await pool.fetchval("SELECT count(*) FROM trips")
        async with pool.acquire() as conn, conn.transaction():
            for n, (vehicle, device) in enumerate(fleet):
                late = _records(vehicle, device, day, _drive(n, LATE_AT_S, LATE_S))
                await copy_samples(conn, late)  # type: ignore[arg-type]
            await mark_dirty(conn, days)
        late_runs.append(await _drain(pool, workers))
        trips_late = await pool.fetchval("SELECT count(*) FROM trips")
        echo(f"run {rep + 1}: first {first_runs[-1]:.2f} s, after late data {late_runs[-1]:.2f} s")
    return TripsBenchResult(vehicles, samples, first_runs, late_runs, trips_first, trips_late)


def main(
    vehicles: Annotated[int, typer.Option(help="Vehicles, one UTC day each")] = 1000,
    trips: Annotated[int, typer.Option(help="Trips per vehicle in the day")] = 3,
    trip_minutes: Annotated[int, typer.Option(help="Minutes per trip (1 Hz samples)")] = 20,
    repetitions: Annotated[int, typer.Option(help="Runs; medians are reported")] = 3,
    workers: Annotated[int, typer.Option(help="Recompute loops at once")] = 2,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
) -> None:
    """Recompute a day of a fleet's trips after late data, beside computing it first."""
    result = asyncio.run(
        run_bench(admin_url, vehicles, trips, trip_minutes, repetitions, workers, typer.echo)
    )
    typer.echo(
        f"{result.vehicles} vehicle-days, {result.samples:,} samples, {workers} recompute "
        f"loop(s), {repetitions} runs"
    )
    typer.echo(
        f"first computation:      {result.first_s:8.2f} s median "
        f"({result.vehicles / result.first_s:,.0f} vehicle-days/s), {result.trips_first} trips"
    )
    typer.echo(
        f"recompute after late:   {result.late_s:8.2f} s median "
        f"({result.vehicles / result.late_s:,.0f} vehicle-days/s), {result.trips_late} trips"
    )
    typer.echo(f"ratio late/first: {result.late_s / result.first_s:.2f}")
