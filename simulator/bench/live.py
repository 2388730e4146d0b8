"""``fleetlink bench live``: latency from a device's MQTT publish to 1,000 SSE clients, beside
the broker's own publish-to-subscriber latency measured in the same run.

In a scratch database (created and dropped here) it registers one device, starts
``fleetlink cloud serve`` (ingest and API) in its own process, and in a third process opens
``clients`` SSE streams to ``/api/v1/live`` plus a plain MQTT subscriber on the device's
telemetry topic. This process then publishes telemetry batches as the agent does (encoded
``TelemetryBatch``, QoS 1) at a fixed rate and notes each publish time; the clients note when
each batch's ``signals`` event arrives. All three processes read the same system clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Annotated

import aiohttp
import asyncpg
import paho.mqtt.client as mqtt
import typer
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleetlink.cloud.auth.accounts import add_user
from fleetlink.cloud.auth.api_tokens import create_token
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.ingest.protocol import parse_mqtt_url
from fleetlink.cloud.records.field_crypto import generate_key_ring_entry
from fleetlink.cloud.registry import assign_device, create_device, create_tenant, create_vehicle
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Series, TelemetryBatch
from fleetlink.shared.topics import Kind, topic

TENANT = "bench-live"
DEVICE = "bench-live-0"
SPEED, RPM = 0x0D, 0x0C
_SEQ = re.compile(rb'"seq":(\d+)')


@dataclass(frozen=True)
class Latencies:
    """Milliseconds from publish to arrival, over every (message, client) pair."""

    values_ms: list[float]
    expected: int

    @property
    def missing(self) -> int:
        return self.expected - len(self.values_ms)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.values_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.values_ms)


def _mqtt_client(mqtt_url: str) -> mqtt.Client:
    address = parse_mqtt_url(mqtt_url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"fleetlink-bench-live-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.connect(address.host, address.port)
    return client


class _StreamReader(asyncio.Protocol):
    """One SSE connection read with the least work per arrival: the time is taken as the bytes
    come in, and the batch's seq picked out of them."""

    def __init__(self, request: bytes, connected: Callable[[], None]) -> None:
        self.request = request
        self.connected = connected
        self.arrivals: list[tuple[int, float]] = []
        self.status_ok = False
        self.closed = False
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        if not self.status_ok:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            if not self._head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(self._head.split(b"\r\n", 1)[0].decode(errors="replace"))
            self.status_ok = True
            self.connected()
            data = self._head
        for found in _SEQ.finditer(data):
            self.arrivals.append((int(found.group(1)), arrived))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


async def _sse_clients(
    port: int, token: str, count: int, ready: Connection, done: asyncio.Event
) -> list[list[tuple[int, float]]]:
    """Open ``count`` streams; return per client the (seq, arrival time) of each batch."""
    loop = asyncio.get_running_loop()
    request = (
        "GET /api/v1/live?events=signals HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    all_connected = asyncio.Event()
    connected = 0

    def one_more() -> None:
        nonlocal connected
        connected += 1
        if connected == count:
            all_connected.set()

    readers: list[_StreamReader] = []
    transports: list[asyncio.Transport] = []
    for _ in range(count):
        transport, reader = await loop.create_connection(
            lambda: _StreamReader(request, one_more), "127.0.0.1", port
        )
        readers.append(reader)
        transports.append(transport)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_connected.wait(), 120)
    ready.send(connected)
    await done.wait()
    for transport in transports:
        transport.close()
    return [reader.arrivals for reader in readers]


def client_process(
    port: int, token: str, count: int, mqtt_url: str | None, pipe: Connection
) -> None:
    """A clients' process: SSE streams, and with ``mqtt_url`` the broker baseline subscriber;
    sends back what arrived when told to stop."""
    broker: list[tuple[int, float]] = []

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        arrived = time.time()
        broker.append((int.from_bytes(message.payload[-4:], "big"), arrived))

    subscriber = None
    if mqtt_url is not None:
        subscriber = _mqtt_client(mqtt_url)
        subscriber.on_message = on_message
        subscriber.subscribe(topic(TENANT, DEVICE, Kind.TELEMETRY) + "/probe", qos=1)
        subscriber.loop_start()

    async def main() -> list[list[tuple[int, float]]]:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop() -> None:
            loop.remove_reader(pipe.fileno())
            done.set()

        loop.add_reader(pipe.fileno(), stop)
        return await _sse_clients(port, token, count, pipe, done)

    streams = asyncio.run(main())
    pipe.recv()  # the stop word that woke the reader
    if subscriber is not None:
        subscriber.loop_stop()
        subscriber.disconnect()
    pipe.send((streams, broker))


async def _prepare(database_url: str) -> str:
    """Migrate, register the device and its vehicle; return a viewer's API token."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        await create_tenant(conn, TENANT)
        await create_device(conn, TENANT, DEVICE)
        vehicle = await create_vehicle(conn, TENANT, "bench van")
        await assign_device(conn, DEVICE, vehicle, datetime.now(UTC) - timedelta(days=1))
        user = await add_user(conn, TENANT, "viewer@bench.example", Role.VIEWER)
        _, token = await create_token(conn, TENANT, user, scopes=("read",))
        return token
    finally:
        await conn.close()


async def _listening(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        )
    finally:
        await conn.close()


async def _serve(
    database_url: str, mqtt_url: str, port: int, wait_ms: int, processes: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLEETLINK_MODE": "demo",
        "FLEETLINK_DATABASE_URL": database_url,
        "FLEETLINK_MQTT_URL": mqtt_url,
        "FLEETLINK_INGEST_WORKERS": "1",
        "FLEETLINK_INGEST_MAX_WAIT_MS": str(wait_ms),
        "FLEETLINK_MQTT_SHARE_GROUP": f"bench-{uuid.uuid4().hex[:6]}",
        "FLEETLINK_MQTT_CLIENT_ID": f"bench-live-{uuid.uuid4().hex[:6]}",
        "FLEETLINK_HTTP_PORT": str(port),
        "FLEETLINK_API_RATE_PER_S": "1000000",
        "FLEETLINK_API_RATE_BURST": "1000000",
        "FLEETLINK_FIELD_KEYS": generate_key_ring_entry("bench"),
        "FLEETLINK_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetlink", "cloud", "serve", "--processes", str(processes)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    # With several processes, each must listen for the relayed messages.
                    if resp.status == 200 and (
                        processes == 1 or await _listening(database_url) >= processes
                    ):
                        return server
            except aiohttp.ClientError:
                pass
            if server.poll() is not None:
                raise RuntimeError("the cloud server exited while starting; see its output")
            await asyncio.sleep(0.2)
    server.kill()
    raise RuntimeError("the cloud server was not ready within 30 s")


def _publish(mqtt_url: str, messages: int, rate: float) -> dict[int, float]:
    """Publish ``messages`` batches at ``rate`` per second, each followed by a baseline probe
    (an MQTT message the broker delivers to the plain subscriber); return publish times."""
    client = _mqtt_client(mqtt_url)
    client.loop_start()
    telemetry = topic(TENANT, DEVICE, Kind.TELEMETRY)
    sent: dict[int, float] = {}
    start = time.monotonic()
    for seq in range(1, messages + 1):
        time.sleep(max(0.0, start + (seq - 1) / rate - time.monotonic()))
        batch = TelemetryBatch(
            device_id=DEVICE,
            seq=seq,
            base_time_ms=int(time.time() * 1000),
            series=[
                Series(signal_id=SPEED, offsets_ms=[0], values=[float(seq % 120)]),
                Series(signal_id=RPM, offsets_ms=[0], values=[800.0 + seq % 3000]),
            ],
        )
        payload = encode(batch)
        sent[seq] = time.time()
        client.publish(telemetry, payload, qos=1)
        client.publish(telemetry + "/probe", payload + seq.to_bytes(4, "big"), qos=1)
    time.sleep(2.0)
    client.loop_stop()
    client.disconnect()
    return sent


def _latencies(
    sent: dict[int, float], arrivals: list[tuple[int, float]], expected: int
) -> Latencies:
    return Latencies([(t - sent[s]) * 1000 for s, t in arrivals if s in sent], expected)


async def run_bench(
    admin_url: str,
    mqtt_url: str,
    clients: int,
    messages: int,
    rate: float,
    wait_ms: int,
    processes: int = 1,
    client_processes: int = 1,
) -> tuple[Latencies, Latencies]:
    """Return (publish -> SSE client, publish -> MQTT subscriber) latencies."""
    name = f"fleetlink_bench_live_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{admin_url.rpartition('/')[0]}/{name}"
    server = None
    try:
        token = await _prepare(database_url)
        port = _free_port()
        server = await _serve(database_url, mqtt_url, port, wait_ms, processes)
        context = multiprocessing.get_context("spawn")
        shares = [
            clients // client_processes + (n < clients % client_processes)
            for n in range(client_processes)
        ]
        pipes, workers = [], []
        for n, share in enumerate(shares):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=client_process,
                args=(port, token, share, mqtt_url if n == 0 else None, theirs),
                daemon=True,
            )
            process.start()
            pipes.append(ours)
            workers.append(process)
        for ours, share in zip(pipes, shares, strict=True):
            if not ours.poll(180) or ours.recv() != share:
                raise RuntimeError(f"the {clients} SSE clients did not all connect")
        await asyncio.sleep(1.0)
        sent = await asyncio.to_thread(_publish, mqtt_url, messages, rate)
        arrivals: list[tuple[int, float]] = []
        broker: list[tuple[int, float]] = []
        for ours in pipes:
            ours.send("stop")
        for ours, process in zip(pipes, workers, strict=True):
            streams, probes = ours.recv()
            arrivals.extend(a for stream in streams for a in stream)
            broker.extend(probes)
            process.join(30)
        sse = _latencies(sent, arrivals, messages * clients)
        return sse, _latencies(sent, broker, messages)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _line(label: str, result: Latencies) -> str:
    return (
        f"{label:<34} median {result.median:7.2f} ms   P99 {result.percentile(0.99):7.2f} ms   "
        f"max {max(result.values_ms):7.2f} ms   ({len(result.values_ms):,} arrivals, "
        f"{result.missing} missing)"
    )


def main(
    clients: Annotated[int, typer.Option(help="Connected SSE clients")] = 1000,
    messages: Annotated[int, typer.Option(help="Telemetry batches published")] = 200,
    rate: Annotated[float, typer.Option(help="Batches per second")] = 10.0,
    ingest_wait_ms: Annotated[
        int, typer.Option(help="The ingest's FLEETLINK_INGEST_MAX_WAIT_MS (chunking delay)")
    ] = 5,
    admin_url: Annotated[
        str, typer.Option(help="PostgreSQL URL allowed to create the scratch database")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    mqtt_url: Annotated[str, typer.Option(help="Broker URL")] = "mqtt://127.0.0.1:1883",
    processes: Annotated[
        int, typer.Option(min=1, max=64, help="API processes (fleetlink cloud serve --processes)")
    ] = 1,
    client_processes: Annotated[
        int, typer.Option(min=1, max=64, help="Processes the SSE clients are spread over")
    ] = 1,
) -> None:
    """Latency from a device's publish to 1,000 SSE clients, beside the broker's own."""
    sse, broker = asyncio.run(
        run_bench(
            admin_url,
            mqtt_url,
            clients,
            messages,
            rate,
            ingest_wait_ms,
            processes,
            client_processes,
        )
    )
    typer.echo(
        f"{messages} batches at {rate:g}/s to {clients} SSE clients in {client_processes} "
        f"process(es), served by {processes} API process(es) "
        f"(ingest chunk wait {ingest_wait_ms} ms)"
    )
    typer.echo(_line("publish -> SSE client (ours)", sse))
    typer.echo(_line("publish -> MQTT subscriber (broker)", broker))


if __name__ == "__main__":
    typer.run(main)
