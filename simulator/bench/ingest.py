"""``fleetlink bench ingest``: end-to-end ingest throughput beside a raw COPY ceiling.

Against the real broker and a scratch database (created and dropped here): publish
``devices x batches`` telemetry batches of ``samples`` samples each and time from the first
publish until the last batch is committed; then time asyncpg ``copy_records_to_table`` of the
same rows into the same table. Both are repeated and reported as medians, with their ratio.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
import paho.mqtt.client as mqtt
import typer
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.ingest.protocol import parse_mqtt_url
from fleetlink.cloud.ingest.series import POINT_COLUMNS, point_records
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.registry import assign_device, create_device, create_tenant, create_vehicle
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Series, TelemetryBatch
from fleetlink.shared.topics import Kind, topic

TENANT = "bench"
SIGNALS = (0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x0F, 0x10, 0x11, 0x2F, 0x42)


@dataclass(frozen=True)
class BenchResult:
    samples_per_run: int
    ingest_samples_per_s: float
    copy_samples_per_s: float
    ingest_runs: list[float]
    copy_runs: list[float]

    @property
    def ratio(self) -> float:
        return self.ingest_samples_per_s / self.copy_samples_per_s


def make_batch(device: str, seq: int, base_ms: int, samples: int) -> TelemetryBatch:
    per_signal = max(1, samples // len(SIGNALS))
    offsets = [i * 100 for i in range(per_signal)]
    return TelemetryBatch(
        device_id=device,
        seq=seq,
        base_time_ms=base_ms,
        series=[
            Series(
                signal_id=sid,
                offsets_ms=offsets,
                values=[round(random.uniform(0, 100), 3) for _ in offsets],
            )
            for sid in SIGNALS
        ],
    )


def _rows(batch: TelemetryBatch, vehicle: uuid.UUID) -> list[tuple[object, ...]]:
    base = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=batch.base_time_ms)
    return [
        (TENANT, vehicle, batch.device_id, s.signal_id, base + timedelta(milliseconds=o), v)
        for s in batch.series
        for o, v in zip(s.offsets_ms, s.values, strict=True)
    ]


def bench_publisher(mqtt_url: str) -> mqtt.Client:
    address = parse_mqtt_url(mqtt_url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"fleetlink-bench-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


async def wait_for_batches(conn: asyncpg.Connection, expected: int, timeout_s: float) -> float:
    deadline = time.perf_counter() + timeout_s
    while True:
        count = await conn.fetchval("SELECT count(*) FROM ingested_batches")
        if count >= expected:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {count} of {expected} batches committed in {timeout_s} s")
        await asyncio.sleep(0.005)


async def run_bench(
    admin_url: str,
    mqtt_url: str,
    devices: int = 200,
    batches: int = 3,
    samples: int = 1000,
    repetitions: int = 3,
    workers: int = 1,
    chunk_batches: int = 200,
) -> BenchResult:
    """Run the benchmark and return its medians; the scratch database is always dropped.

    Raises TimeoutError if the ingest does not commit every batch within a minute per run.
    """
    name = f"fleetlink_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base_url = admin_url.rsplit("/", 1)[0]
    dsn = f"{base_url}/{name}"
    try:
        return await _run(
            dsn, mqtt_url, devices, batches, samples, repetitions, workers, chunk_batches
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _run(
    dsn: str,
    mqtt_url: str,
    devices: int,
    batches: int,
    samples: int,
    repetitions: int,
    workers: int,
    chunk_batches: int,
) -> BenchResult:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=workers + 2)
    async with pool.acquire() as conn:
        await migrate(conn)
        await create_tenant(conn, TENANT)
        vehicles: dict[str, uuid.UUID] = {}
        for n in range(devices):
            device = f"bench-{n:04d}"
            await create_device(conn, TENANT, device)
            vehicles[device] = await create_vehicle(conn, TENANT, f"bench vehicle {n}")
            await assign_device(
                conn, device, vehicles[device], datetime.now(UTC) - timedelta(days=2)
            )
    settings = CloudSettings(
        mode="demo",
        database_url=dsn,
        mqtt_url=mqtt_url,
        ingest_workers=workers,
        mqtt_client_id=f"fleetlink-bench-ingest-{uuid.uuid4().hex[:6]}",
        mqtt_session_expiry_s=0,
        mqtt_share_group=f"bench-{uuid.uuid4().hex[:6]}",
        ingest_max_batches=chunk_batches,
        ingest_max_wait_ms=20,
        ingest_queue_size=max(2000, chunk_batches * 4),
    )
    service = IngestService(settings, pool)
    await service.start()
    publisher = bench_publisher(mqtt_url)
    ingest_runs: list[float] = []
    copy_runs: list[float] = []
    total = 0
    try:
        start_ms = int(time.time() * 1000) - 3_600_000
        for rep in range(repetitions):
            messages: list[tuple[str, bytes]] = []
            rows: list[tuple[object, ...]] = []
            for b in range(batches):
                for device in vehicles:
                    seq = rep * batches + b + 1
                    batch = make_batch(device, seq, start_ms + seq * 20_000, samples)
                    messages.append((topic(TENANT, device, Kind.TELEMETRY), encode(batch)))
                    rows.extend(_rows(batch, vehicles[device]))
            total = len(rows)
            async with pool.acquire() as conn:
                before = await conn.fetchval("SELECT count(*) FROM ingested_batches")
                began = time.perf_counter()
                for topic_name, payload in messages:
                    publisher.publish(topic_name, payload, qos=1)
                ended = await wait_for_batches(conn, before + len(messages), 60)
                ingest_runs.append(total / (ended - began))
                # The same rows as the ingest writes them: series ids looked up beforehand.
                points = await point_records(conn, rows)  # type: ignore[arg-type]
                began = time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "sample_points", records=points, columns=POINT_COLUMNS
                    )
                copy_runs.append(total / (time.perf_counter() - began))
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        await service.stop()
        await pool.close()
    return BenchResult(
        total,
        statistics.median(ingest_runs),
        statistics.median(copy_runs),
        ingest_runs,
        copy_runs,
    )


def main(
    devices: Annotated[int, typer.Option(help="Simulated devices")] = 200,
    batches: Annotated[int, typer.Option(help="Batches per device per run")] = 3,
    samples: Annotated[int, typer.Option(help="Samples per batch")] = 1000,
    repetitions: Annotated[int, typer.Option(help="Runs; medians are reported")] = 3,
    workers: Annotated[int, typer.Option(help="Ingest workers (shared subscription)")] = 1,
    chunk_batches: Annotated[int, typer.Option(help="Batches per transaction, at most")] = 200,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    mqtt_url: Annotated[str, typer.Option(help="Broker URL")] = "mqtt://127.0.0.1:1883",
) -> None:
    """Measure end-to-end MQTT→PostgreSQL ingest against a raw COPY of the same rows."""
    result = asyncio.run(
        run_bench(
            admin_url, mqtt_url, devices, batches, samples, repetitions, workers, chunk_batches
        )
    )
    typer.echo(
        f"{devices} devices x {batches} batches x {samples} samples = "
        f"{result.samples_per_run:,} samples per run, {repetitions} runs, {workers} worker(s), "
        f"<= {chunk_batches} batches per transaction"
    )
    typer.echo(
        f"ingest (publish -> committed): {result.ingest_samples_per_s:>12,.0f} samples/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in result.ingest_runs)})"
    )
    typer.echo(
        f"ceiling (COPY same rows):      {result.copy_samples_per_s:>12,.0f} samples/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in result.copy_runs)})"
    )
    typer.echo(f"ingest / ceiling:              {result.ratio:>12.0%}")


if __name__ == "__main__":
    typer.run(main)
