"""``fleetlink bench ingest``: end-to-end ingest throughput beside two ceilings.

Against the real broker and a scratch database (created and dropped here): publish
``devices x batches`` telemetry batches of ``samples`` samples each, from a process of its own
(as real devices are), and time from the first publish until the last batch is committed.
Ceilings measured in the same run: asyncpg ``copy_records_to_table`` of the same rows into
the same table (samples/s; what matters for large batches), and paho publish -> broker -> paho
subscribe of the same payloads, publisher and subscriber each in its own process (messages/s;
what matters for small batches). Each is repeated and reported as medians, with the ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator
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
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Series, TelemetryBatch
from fleetlink.shared.topics import Kind, topic
from fleetlink.simulator.bench import services
from fleetlink.simulator.fleet_load.provision import provision

TENANT = "bench"
SIGNALS = (0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x0F, 0x10, 0x11, 0x2F, 0x42)


@dataclass(frozen=True)
class BenchResult:
    samples_per_run: int
    ingest_samples_per_s: float
    copy_samples_per_s: float
    ingest_runs: list[float]
    copy_runs: list[float]
    messages_per_run: int = 0
    pubsub_runs: list[float] | None = None
    pubsub_dropped: int = 0

    @property
    def ratio(self) -> float:
        return self.ingest_samples_per_s / self.copy_samples_per_s

    @property
    def ingest_messages_per_s(self) -> float:
        return self.ingest_samples_per_s / self.samples_per_run * self.messages_per_run

    @property
    def pubsub_messages_per_s(self) -> float:
        return statistics.median(self.pubsub_runs) if self.pubsub_runs else float("nan")


def _publish_child(mqtt_url: str, messages: list[tuple[str, bytes]], go: object) -> None:
    """In a process of its own: connect, wait for ``go``, publish everything at QoS 1 and
    wait until the broker has acknowledged every publish."""
    client = bench_publisher(mqtt_url)
    go.wait()  # type: ignore[attr-defined]
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def _subscribe_child(mqtt_url: str, prefix: str, expected: int, ready: object, out: object) -> None:
    """In a process of its own: subscribe to ``prefix/#`` at QoS 1 and put (messages received,
    wall-clock time of the last one) on ``out`` once all ``expected`` arrived or none came for
    5 s (a broker with a small per-client queue drops what exceeds it)."""
    address = parse_mqtt_url(mqtt_url)
    count = 0
    last = 0.0

    def on_message(client, userdata, message):
        nonlocal count, last
        count += 1
        last = time.time()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"fleetlink-bench-sub-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()  # type: ignore[attr-defined]
    client.connect(address.host, address.port)
    client.loop_start()
    client.subscribe(f"{prefix}/#", qos=1)
    started = time.time()
    while count < expected:
        time.sleep(0.05)
        quiet_since = last or started
        if time.time() - quiet_since > 5 and (count or time.time() - started > 60):
            break
    out.put((count, last))  # type: ignore[attr-defined]
    client.disconnect()
    client.loop_stop()


def _start(
    mqtt_url: str, messages: list[tuple[str, bytes]]
) -> tuple[mp.process.BaseProcess, float, float]:
    """Start the publisher process, let it connect, release it; return it and the release
    time (``perf_counter`` and wall clock: the latter is what compares across processes)."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    child = ctx.Process(target=_publish_child, args=(mqtt_url, messages, go), daemon=True)
    child.start()
    time.sleep(1.5)  # the child imports paho and connects before it is released
    began, wall = time.perf_counter(), time.time()
    go.set()
    return child, began, wall


def pubsub_ceiling(mqtt_url: str, payloads: list[bytes]) -> tuple[float, int]:
    """Return messages/s of paho publish -> broker -> paho subscribe of ``payloads``, each
    client in its own process, and how many the broker dropped (a per-client queue smaller
    than the burst, as mosquitto's default ``max_queued_messages 1000``, drops the rest).
    Raises TimeoutError if the subscriber does not subscribe in 30 s."""
    ctx = mp.get_context("spawn")
    prefix = f"fleetlink-bench-ceiling/{uuid.uuid4().hex[:8]}"
    ready, out = ctx.Event(), ctx.Queue()
    sub = ctx.Process(
        target=_subscribe_child, args=(mqtt_url, prefix, len(payloads), ready, out), daemon=True
    )
    sub.start()
    if not ready.wait(30):
        raise TimeoutError("the ceiling's subscriber did not subscribe in 30 s")
    messages = [(f"{prefix}/{n % 1000}", p) for n, p in enumerate(payloads)]
    pub, _, began = _start(mqtt_url, messages)
    received, last = out.get(timeout=300)
    pub.join(timeout=30)
    sub.join(timeout=30)
    return received / max(last - began, 1e-6), len(payloads) - received


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
    """Return ``perf_counter`` once ``expected`` telemetry batches are committed in all.

    Reads the ingest's own counter, which each chunk's transaction updates with its batches
    (one row: cheap enough to poll every few ms without loading the database it measures).
    Raises TimeoutError after ``timeout_s``.
    """
    deadline = time.perf_counter() + timeout_s
    while True:
        count = await committed_batches(conn)
        if count >= expected:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {count} of {expected} batches committed in {timeout_s} s")
        await asyncio.sleep(0.005)


async def committed_batches(conn: asyncpg.Connection) -> int:
    """Return how many telemetry batches the ingest has committed in this database."""
    return int(
        await conn.fetchval(
            "SELECT coalesce(max(count), 0) FROM ingest_counters WHERE name = 'batches'"
        )
    )


async def run_bench(
    admin_url: str,
    mqtt_url: str | None,
    devices: int = 200,
    batches: int = 3,
    samples: int = 1000,
    repetitions: int = 3,
    workers: int = 1,
    chunk_batches: int = 200,
    processes: int = 2,
) -> BenchResult:
    """Run the benchmark and return its medians; the scratch database is always dropped.

    ``mqtt_url`` None starts a tuned mosquitto for the run. ``processes`` > 0 runs the ingest
    as ``fleetlink cloud ingest --processes N`` (as deployed); 0 runs ``workers`` workers in
    this process. Raises TimeoutError if the ingest does not commit every batch within two
    minutes per run.
    """
    name = f"fleetlink_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base_url = admin_url.rsplit("/", 1)[0]
    dsn = f"{base_url}/{name}"
    shape = _Shape(devices, batches, samples, repetitions, workers, chunk_batches, processes)
    try:
        if mqtt_url is not None:
            return await _run(dsn, mqtt_url, shape)
        with services.tuned_mosquitto() as (url, _):
            return await _run(dsn, url, shape)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass(frozen=True)
class _Shape:
    devices: int
    batches: int
    samples: int
    repetitions: int
    workers: int
    chunk_batches: int
    processes: int


@contextlib.asynccontextmanager
async def _ingest(
    dsn: str, mqtt_url: str, pool: asyncpg.Pool, shape: _Shape
) -> AsyncIterator[None]:
    """Run the ingest under test: its own processes, or workers in this one."""
    chunking = {
        "FLEETLINK_INGEST_MAX_BATCHES": str(shape.chunk_batches),
        "FLEETLINK_INGEST_MAX_WAIT_MS": "20",
        "FLEETLINK_INGEST_QUEUE_SIZE": str(max(2000, shape.chunk_batches * 4)),
    }
    if shape.processes > 0:
        with services.ingest_processes(dsn, mqtt_url, shape.processes, chunking):
            yield
        return
    settings = CloudSettings(
        mode="demo",
        database_url=dsn,
        mqtt_url=mqtt_url,
        ingest_workers=shape.workers,
        mqtt_client_id=f"fleetlink-bench-ingest-{uuid.uuid4().hex[:6]}",
        mqtt_session_expiry_s=0,
        mqtt_share_group=f"bench-{uuid.uuid4().hex[:6]}",
        ingest_max_batches=shape.chunk_batches,
        ingest_max_wait_ms=20,
        ingest_queue_size=max(2000, shape.chunk_batches * 4),
    )
    service = IngestService(settings, pool)
    await service.start()
    try:
        yield
    finally:
        await service.stop()


async def _run(dsn: str, mqtt_url: str, shape: _Shape) -> BenchResult:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=shape.workers + 2)
    async with pool.acquire() as conn:
        await migrate(conn)
        ids = [f"bench-{n:04d}" for n in range(shape.devices)]
        await provision(conn, TENANT, ids)
        vehicles: dict[str, uuid.UUID] = {
            r["device_id"]: r["vehicle_id"]
            for r in await conn.fetch(
                "SELECT device_id, vehicle_id FROM device_assignments WHERE tenant_id = $1",
                TENANT,
            )
        }
    ingest_runs: list[float] = []
    copy_runs: list[float] = []
    pubsub_runs: list[float] = []
    dropped = 0
    total = 0
    try:
        async with _ingest(dsn, mqtt_url, pool, shape):
            start_ms = int(time.time() * 1000) - 3_600_000
            for rep in range(shape.repetitions):
                messages: list[tuple[str, bytes]] = []
                rows: list[tuple[object, ...]] = []
                for b in range(shape.batches):
                    for device in vehicles:
                        seq = rep * shape.batches + b + 1
                        batch = make_batch(device, seq, start_ms + seq * 20_000, shape.samples)
                        messages.append((topic(TENANT, device, Kind.TELEMETRY), encode(batch)))
                        rows.extend(_rows(batch, vehicles[device]))
                total = len(rows)
                async with pool.acquire() as conn:
                    before = await committed_batches(conn)
                    child, began, _ = await asyncio.to_thread(_start, mqtt_url, messages)
                    ended = await wait_for_batches(conn, before + len(messages), 120)
                    child.join(timeout=30)
                    ingest_runs.append(total / (ended - began))
                    # The same rows as the ingest writes them: series ids looked up beforehand.
                    points = await point_records(conn, rows)  # type: ignore[arg-type]
                    began = time.perf_counter()
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "sample_points", records=points, columns=POINT_COLUMNS
                        )
                    copy_runs.append(total / (time.perf_counter() - began))
                rate, lost = await asyncio.to_thread(
                    pubsub_ceiling, mqtt_url, [p for _, p in messages]
                )
                pubsub_runs.append(rate)
                dropped += lost
    finally:
        await pool.close()
    return BenchResult(
        total,
        statistics.median(ingest_runs),
        statistics.median(copy_runs),
        ingest_runs,
        copy_runs,
        shape.devices * shape.batches,
        pubsub_runs,
        dropped,
    )


def main(
    devices: Annotated[int, typer.Option(help="Simulated devices")] = 200,
    batches: Annotated[int, typer.Option(help="Batches per device per run")] = 3,
    samples: Annotated[int, typer.Option(help="Samples per batch")] = 1000,
    repetitions: Annotated[int, typer.Option(help="Runs; medians are reported")] = 3,
    processes: Annotated[
        int,
        typer.Option(
            min=0,
            help="Ingest processes (fleetlink cloud ingest --processes N, as deployed); "
            "0 runs --workers workers inside the benchmark's process",
        ),
    ] = 2,
    workers: Annotated[
        int, typer.Option(min=1, help="In-process ingest workers, with --processes 0")
    ] = 1,
    chunk_batches: Annotated[int, typer.Option(help="Batches per transaction, at most")] = 200,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            help="Broker URL; by default a mosquitto with the recommended windows is started "
            "for the run (docs/observability.md)"
        ),
    ] = None,
) -> None:
    """Measure end-to-end MQTT→PostgreSQL ingest against a raw COPY of the same rows."""
    result = asyncio.run(
        run_bench(
            admin_url,
            mqtt_url,
            devices,
            batches,
            samples,
            repetitions,
            workers,
            chunk_batches,
            processes,
        )
    )
    typer.echo(
        f"{devices} devices x {batches} batches x {samples} samples = "
        f"{result.samples_per_run:,} samples per run, {repetitions} runs, "
        f"{f'{processes} ingest process(es)' if processes else f'{workers} in-process worker(s)'}, "
        f"broker {mqtt_url or 'tuned mosquitto'}, "
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
    typer.echo(f"ingest / COPY ceiling:         {result.ratio:>12.0%}")
    typer.echo(
        f"ingest (publish -> committed): {result.ingest_messages_per_s:>12,.0f} messages/s "
        f"({result.messages_per_run:,} messages per run, publisher in its own process)"
    )
    lost = result.pubsub_dropped
    note = f"; the broker dropped {lost:,} of the bursts" if lost else ""
    typer.echo(
        f"ceiling (paho pub -> broker -> paho sub, own processes): "
        f"{result.pubsub_messages_per_s:,.0f} messages/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in result.pubsub_runs or [])}"
        f"{note})"
    )
    typer.echo(
        f"ingest / pub-sub ceiling:      "
        f"{result.ingest_messages_per_s / result.pubsub_messages_per_s:>12.0%}"
    )


if __name__ == "__main__":
    typer.run(main)
