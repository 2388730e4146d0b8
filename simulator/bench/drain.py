"""``fleetlink bench drain``: how fast a fleet's backlog drains after an outage, and how long a
device can stay offline.

Backlog drain: ``devices`` outboxes hold ``samples`` samples between them, stored while offline
by the real ``Outbox`` in batches of the size an offline agent makes by default (D34). Then
every device's real ``Uplink`` connects (hello, signed acks, in-flight window) to the real
broker and an ingest on a scratch database; the figure is samples/s from the connect until
every outbox is empty. Beside it, in the same run and database: the ingest's steady-state
rate, the same number of batches published by a plain client with no outbox, no window and
no acks awaited.

Offline endurance: one device with 50 signals at 1 Hz fills an outbox for ``hours`` of
simulated time at several batch ages, with and without compression; the figure is bytes on
disk per sample (file size after a WAL checkpoint) and the days that fit in 1 GB.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.registry import (
    assign_device,
    create_device,
    create_tenant,
    create_vehicle,
    issue_device_key,
)
from fleetlink.cloud.settings import CloudSettings
from fleetlink.edge.batcher import Draft
from fleetlink.edge.config import DeviceSection, MqttSection, OutboxSection
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.uplink import Uplink
from fleetlink.shared.codec import COMPRESS_ABOVE_BYTES, encode
from fleetlink.shared.signals import all_signals
from fleetlink.shared.topics import Kind, topic
from fleetlink.simulator.bench.ingest import (
    bench_publisher,
    committed_batches,
    make_batch,
    wait_for_batches,
)

TENANT = "drain"
GIB = 1024**3


@dataclass(frozen=True)
class DrainResult:
    samples: int
    batches: int
    drain_runs: list[float]
    steady_runs: list[float]

    @property
    def drain(self) -> float:
        return statistics.median(self.drain_runs)

    @property
    def steady(self) -> float:
        return statistics.median(self.steady_runs)


def _builder(
    draft: Draft, device: str, compress_above: int | None = COMPRESS_ABOVE_BYTES
) -> Callable[[int], bytes]:
    def build(seq: int) -> bytes:
        return encode(draft.to_message(device, seq), compress_above=compress_above)

    return build


def _fill(outbox: Outbox, device: str, samples: int, batch_samples: int, base_ms: int) -> int:
    """Store ``samples`` samples in batches of ``batch_samples`` as an offline agent would
    (every catalog signal at 1 Hz, random walks)."""
    signals = [s.id for s in all_signals()]
    stored = 0
    tick = 0
    rng = random.Random(device)
    values = dict.fromkeys(signals, 50.0)
    while stored < samples:
        draft: list[Sample] = []
        while len(draft) < batch_samples and stored + len(draft) < samples:
            for sid in signals:
                values[sid] = round(values[sid] + rng.uniform(-1, 1), 2)
                draft.append(Sample(sid, base_ms + tick * 1000, values[sid]))
            tick += 1
        outbox.add("telemetry", _builder(Draft(tuple(draft)), device), len(draft))
        stored += len(draft)
    return stored


async def _drain_once(
    pool: asyncpg.Pool,
    mqtt_url: str,
    root: Path,
    rep: int,
    devices: int,
    samples: int,
    batch_samples: int,
) -> tuple[float, int]:
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    uplinks: list[Uplink] = []
    base_ms = int(time.time() * 1000) - 86_400_000 + rep * 3_600_000
    total = 0
    async with pool.acquire() as conn:
        for n in range(devices):
            device = f"drain-{rep}-{n:03d}"
            await create_device(conn, TENANT, device)
            key = await issue_device_key(conn, device)
            vehicle = await create_vehicle(conn, TENANT, f"drain vehicle {rep}-{n}")
            await assign_device(conn, device, vehicle, datetime.now(UTC) - timedelta(days=3))
            outbox = Outbox(root / f"{device}.db")
            total += await asyncio.to_thread(
                _fill, outbox, device, samples // devices, batch_samples, base_ms
            )
            uplinks.append(
                Uplink(
                    DeviceSection(id=device, tenant=TENANT, key=key.hex()),
                    MqttSection(url=f"mqtt://{host}:{port}", protocol="5"),
                    outbox,
                )
            )
    batches = sum(len(u.outbox) for u in uplinks)
    stop = asyncio.Event()
    began = time.perf_counter()
    tasks = [asyncio.create_task(u.run(stop)) for u in uplinks]
    try:
        while any(len(u.outbox) for u in uplinks):
            if time.perf_counter() - began > 600:
                raise TimeoutError("the backlog did not drain within 10 minutes")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for u in uplinks:
            u.outbox.close()
    return total / elapsed, batches


async def _steady_once(
    pool: asyncpg.Pool, mqtt_url: str, rep: int, devices: int, samples: int, batch_samples: int
) -> float:
    """The ingest's own rate: the same volume from a plain publisher, no outbox, no acks."""
    names = []
    async with pool.acquire() as conn:
        for n in range(devices):
            device = f"steady-{rep}-{n:03d}"
            await create_device(conn, TENANT, device)
            names.append(device)
    per_device = samples // devices // batch_samples
    base_ms = int(time.time() * 1000) - 86_400_000 + rep * 3_600_000
    messages = [
        (
            topic(TENANT, d, Kind.TELEMETRY),
            encode(make_batch(d, seq, base_ms + seq * 50_000, batch_samples)),
        )
        for seq in range(1, per_device + 1)
        for d in names
    ]
    publisher = bench_publisher(mqtt_url)
    try:
        async with pool.acquire() as conn:
            before = await committed_batches(conn)
            began = time.perf_counter()
            for topic_name, payload in messages:
                publisher.publish(topic_name, payload, qos=1)
            ended = await wait_for_batches(conn, before + len(messages), 600)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    return len(messages) * batch_samples / (ended - began)


async def run_drain(
    admin_url: str, mqtt_url: str, devices: int, samples: int, batch_samples: int, repetitions: int
) -> DrainResult:
    """Run the drain benchmark on a scratch database (always dropped) and return its runs."""
    name = f"fleetlink_drain_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    drains: list[float] = []
    steadies: list[float] = []
    batches = 0
    try:
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=6)
        async with pool.acquire() as conn:
            await migrate(conn)
            await create_tenant(conn, TENANT)
        settings = CloudSettings(
            mode="demo",
            database_url=dsn,
            mqtt_url=mqtt_url,
            mqtt_client_id=f"fleetlink-drain-{uuid.uuid4().hex[:6]}",
            mqtt_share_group=f"drain-{uuid.uuid4().hex[:6]}",
        )
        service = IngestService(settings, pool)
        await service.start()
        try:
            with tempfile.TemporaryDirectory(prefix="fleetlink-drain-") as tmp:
                for rep in range(repetitions):
                    rate, batches = await _drain_once(
                        pool, mqtt_url, Path(tmp), rep, devices, samples, batch_samples
                    )
                    drains.append(rate)
                    steadies.append(
                        await _steady_once(pool, mqtt_url, rep, devices, samples, batch_samples)
                    )
        finally:
            await service.stop()
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return DrainResult(samples, batches, drains, steadies)


def endurance(hours: float, ages_s: list[int], root: Path) -> list[tuple[int, bool, float]]:
    """Return (batch age in s, compressed, bytes on disk per sample) for 50 signals at 1 Hz."""
    signals = [s.id for s in all_signals()][:43]
    signals += [1000 + i for i in range(50 - len(signals))]  # ids beyond the catalog: size only
    rows = []
    for age in ages_s:
        for compressed in (True, False):
            path = root / f"endurance-{age}-{compressed}.db"
            rng = random.Random(age)
            values = dict.fromkeys(signals, 50.0)
            samples = 0
            compress_above = COMPRESS_ABOVE_BYTES if compressed else None
            with Outbox(path) as outbox:
                for start in range(0, int(hours * 3600), age):
                    draft = []
                    for second in range(start, start + age):
                        for sid in signals:
                            values[sid] = round(values[sid] + rng.uniform(-0.5, 0.5), 2)
                            draft.append(
                                Sample(sid, 1_700_000_000_000 + second * 1000, values[sid])
                            )
                    build = _builder(Draft(tuple(draft)), "endurance-device", compress_above)
                    outbox.add("telemetry", build, len(draft))
                    samples += len(draft)
            db = sqlite3.connect(path)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            size = sum(p.stat().st_size for p in root.glob(f"{path.name}*"))
            rows.append((age, compressed, size / samples))
    return rows


def main(
    devices: Annotated[int, typer.Option(help="Devices whose outboxes hold the backlog")] = 50,
    samples: Annotated[int, typer.Option(help="Samples buffered across the fleet")] = 1_000_000,
    batch_samples: Annotated[
        int, typer.Option(help="Samples per stored batch (the agent's offline default)")
    ] = OutboxSection.model_fields["max_batch_samples"].default,
    repetitions: Annotated[int, typer.Option(help="Runs; medians are reported")] = 3,
    hours: Annotated[float, typer.Option(help="Simulated offline hours for endurance")] = 2.0,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    mqtt_url: Annotated[str, typer.Option(help="Broker URL")] = "mqtt://127.0.0.1:1883",
) -> None:
    """Backlog drain after an outage beside the ingest's steady rate; outbox bytes per sample."""
    result = asyncio.run(
        run_drain(admin_url, mqtt_url, devices, samples, batch_samples, repetitions)
    )
    typer.echo(
        f"backlog: {result.samples:,} samples in {result.batches:,} batches of {batch_samples} "
        f"across {devices} outboxes, {repetitions} runs"
    )
    typer.echo(
        f"drain (connect -> every outbox empty): {result.drain:>10,.0f} samples/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in result.drain_runs)})"
    )
    typer.echo(
        f"ingest steady state (plain publisher): {result.steady:>10,.0f} samples/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in result.steady_runs)})"
    )
    typer.echo(f"drain / steady state:                  {result.drain / result.steady:>9.0%}")
    with tempfile.TemporaryDirectory(prefix="fleetlink-endurance-") as tmp:
        rows = endurance(hours, [1, 10, 30, 60], Path(tmp))
    typer.echo("offline endurance, 50 signals at 1 Hz (bytes on disk per sample; days in 1 GB):")
    for age, compressed, per_sample in rows:
        days = GIB / (per_sample * 50 * 86_400)
        typer.echo(
            f"  batch every {age:>2} s, {'zstd' if compressed else 'raw '}: "
            f"{per_sample:6.2f} B/sample, {days:6.1f} days"
        )
