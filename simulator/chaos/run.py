"""``fleetlink sim chaos``: a fleet of real agents, a broker, the cloud and a database the run
owns, under a seeded schedule of faults; at the end one summary of what was produced, stored,
duplicated, lost, the largest backlog and the longest recovery.

Layout: each agent is its own process (so it can be killed with SIGKILL) and reaches the broker
through its own TCP proxy (cut, blackhole, delay, throttle). The cloud (``fleetlink cloud
serve``), mosquitto (with persistence) and a PostgreSQL cluster (initdb in a temp dir) run on
their own loopback ports. A replayer on the broker captures batches and delivers them again,
duplicated and out of order.

Counting: a device's *produced* samples are those it committed to its outbox (samples an agent
held in memory when it was killed never existed for the system). Every produced sample must be
stored once, quarantined (the device whose clock is hours ahead), or inside a gap the device
reported (its small outbox cap deliberately overflowed); anything else is *lost*.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleetlink.cloud.registry import (
    assign_device,
    create_device,
    create_tenant,
    create_vehicle,
    issue_device_key,
)
from fleetlink.simulator.chaos.accounting import OutboxLedger, Tally, backlog, tally
from fleetlink.simulator.chaos.schedule import KINDS, Fault, faults
from fleetlink.simulator.chaos.services import (
    CloudProcess,
    OwnedMosquitto,
    OwnedPostgres,
    free_port,
)
from fleetlink.simulator.chaos.tcp_proxy import TcpProxy

TENANT = "chaos"
CAP_DEVICE = 0  # small outbox cap, many signals: the cap_fill fault overflows it
AHEAD_DEVICE = 1  # clock two hours ahead: its batches are quarantined
BEHIND_DEVICE = 2  # clock twenty minutes behind: stored as they are
_SKEWS_MS = {AHEAD_DEVICE: 2 * 3600_000, BEHIND_DEVICE: -20 * 60_000}
_CAP_BYTES = 16 * 1024
_DRAINED_BATCHES = 4  # a device holding at most this many batches has caught up
_RECOVERY_LIMIT_S = 90.0


@dataclass(slots=True)
class Device:
    index: int
    id: str
    dir: Path
    signals: int
    rate_hz: float
    skew_ms: int
    proxy: TcpProxy
    key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    ledger: OutboxLedger = field(default_factory=OutboxLedger)

    @property
    def outbox(self) -> Path:
        return self.dir / "outbox.db"

    def config(self) -> Path:
        interval = 0.1 if self.index == CAP_DEVICE else 1.0
        cap = _CAP_BYTES if self.index == CAP_DEVICE else 64 * 1024 * 1024
        path = self.dir / "device.toml"
        path.write_text(
            f'[device]\nid = "{self.id}"\ntenant = "{TENANT}"\nkey = "{self.key}"\n\n'
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{self.proxy.port}"\nkeepalive_s = 5\n'
            'ack_timeout_s = 5.0\nmax_inflight = 20\ndrain_on_stop_s = 30\nprotocol = "5"\n'
            "reconnect_min_s = 1\nreconnect_max_s = 4\n\n"
            f'[outbox]\npath = "{self.outbox}"\nbatch_interval_s = {interval}\n'
            # The small-cap device keeps small batches offline too, so its cap fills in seconds.
            + (f"offline_batch_interval_s = {interval}\n" if self.index == CAP_DEVICE else "")
            + f"max_batch_samples = 500\nmax_bytes = {cap}\n",
            encoding="utf-8",
        )
        return path

    def start(self) -> None:
        log = (self.dir / "agent.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetlink.simulator.chaos.device",
                str(self.config()),
                str(self.signals),
                str(self.rate_hz),
                str(self.skew_ms),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class Replayer:
    """Captures device batches on the broker and publishes them again, shuffled and doubled."""

    def __init__(self, port: int, rng: random.Random) -> None:
        self.port = port
        self.rng = rng
        self.captured: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.replayed = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"chaos-replayer-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(f"fl/v1/{TENANT}/+/telemetry", 0), (f"fl/v1/{TENANT}/+/events", 0)]
        )
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)

    def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.captured.append((message.topic, bytes(message.payload)))
            del self.captured[:-500]

    def replay(self, count: int) -> int:
        with self.lock:
            picked = self.rng.sample(self.captured, min(count, len(self.captured)))
        burst = picked + self.rng.sample(picked, len(picked) // 2)
        self.rng.shuffle(burst)
        for topic, payload in burst:
            self.client.publish(topic, payload, qos=1)
        self.replayed += len(burst)
        return len(burst)


@dataclass(slots=True)
class Summary:
    seed: int
    vehicles: int
    minutes: float
    tally: Tally
    largest_backlog_batches: int
    largest_backlog_bytes: int
    longest_recovery_s: float
    recovery_of: str
    ran: list[tuple[Fault, float]]
    replayed: int

    @property
    def ok(self) -> bool:
        return self.tally.lost == 0 and self.tally.duplicated == 0

    def render(self) -> str:
        t = self.tally
        counts = {k: sum(1 for f, _ in self.ran if f.kind == k) for k in KINDS}
        lines = [
            f"chaos run: {self.vehicles} vehicles, {self.minutes:g} min, seed {self.seed}",
            f"  samples produced (committed to outboxes): {t.produced:,}",
            f"  stored once:                              {t.stored:,}",
            f"  quarantined (clock 2 h ahead):            {t.quarantined:,}",
            f"  in gaps the devices reported (cap):       {t.cap_gap_samples:,} "
            f"({t.cap_gaps} gap records)",
            f"  discarded unsent by re-installs:          {t.discarded_by_reinstall:,}",
            f"  left in outboxes at the end, not stored:  {t.left_in_outboxes:,}",
            f"  duplicated:                               {t.duplicated:,}",
            f"  lost:                                     {t.lost:,}",
            f"  memory-overflow gap samples (never stored on a device): {t.memory_gap_samples:,}",
            f"  duplicate deliveries the cloud absorbed:  {t.duplicate_deliveries_absorbed:,} "
            f"(replayed {self.replayed})",
            f"  largest backlog: {self.largest_backlog_batches:,} batches, "
            f"{self.largest_backlog_bytes / 1024:,.0f} KiB across the fleet",
            f"  longest recovery: {self.longest_recovery_s:.1f} s (after {self.recovery_of})",
            "  faults run: " + ", ".join(f"{k} {n}" for k, n in counts.items()),
            "  fault schedule (from the seed; recovery after each):",
            *(f"    {f.describe()}  -> {r:5.1f} s" for f, r in self.ran),
            f"  result: {'OK: nothing lost, nothing twice' if self.ok else 'FAILED'}",
        ]
        return "\n".join(lines)


class ChaosRun:
    """One run; ``await run()`` returns its :class:`Summary`."""

    def __init__(
        self,
        vehicles: int,
        minutes: float,
        seed: int,
        workdir: Path | None = None,
        quick: bool = False,
        say: Callable[[str], None] = print,
    ) -> None:
        if vehicles < 4:
            raise ValueError(
                "a chaos run needs at least 4 vehicles (cap, clock ahead, behind, plain)"
            )
        self.vehicles = vehicles
        self.minutes = minutes
        self.seed = seed
        self.quick = quick
        self.say = say
        self.rng = random.Random(seed ^ 0x5EED)
        self.root = workdir or Path(tempfile.mkdtemp(prefix="fleetlink-chaos-"))
        os.chmod(self.root, 0o755)  # the broker and the database may run as their own users
        self.pg = OwnedPostgres(self.root)
        self.broker = OwnedMosquitto(self.root)
        self.http_port = free_port()
        self.cloud = CloudProcess(
            {
                "FLEETLINK_MODE": "demo",
                "FLEETLINK_DATABASE_URL": self.pg.url,
                "FLEETLINK_MQTT_URL": f"mqtt://127.0.0.1:{self.broker.port}",
                "FLEETLINK_HTTP_PORT": str(self.http_port),
                "FLEETLINK_MQTT_CLIENT_ID": "chaos-ingest",
                "FLEETLINK_MQTT_SESSION_EXPIRY_S": "300",
                "FLEETLINK_LOG_LEVEL": "WARNING",
            },
            self.root / "cloud.log",
        )
        self.devices: list[Device] = []
        self.replayer: Replayer | None = None
        self.largest = (0, 0)
        self._session: aiohttp.ClientSession | None = None

    async def _ready(self) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(f"http://127.0.0.1:{self.http_port}/readyz") as r:
                return r.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def _wait(self, predicate: Callable[[], object], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.25)
        raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")

    def _backlogs(self) -> list[tuple[int, int]]:
        return [backlog(d.outbox) for d in self.devices]

    def _drained(self) -> bool:
        return all(n <= _DRAINED_BATCHES for n, _ in self._backlogs())

    async def _watch_backlog(self) -> None:
        while True:
            sizes = await asyncio.to_thread(self._backlogs)
            total = (sum(n for n, _ in sizes), sum(b for _, b in sizes))
            self.largest = (max(self.largest[0], total[0]), max(self.largest[1], total[1]))
            await asyncio.sleep(0.5)

    async def _setup(self) -> None:
        await asyncio.to_thread(self.pg.init)
        await asyncio.to_thread(self.pg.start)
        await asyncio.to_thread(self.broker.start)
        self.cloud.start()
        await self._wait(self._ready, 60, "the cloud becoming ready")
        conn = await asyncpg.connect(self.pg.url)
        try:
            await create_tenant(conn, TENANT, "Chaos fleet")
            for index in range(self.vehicles):
                device_id = f"chaos-{index}"
                await create_device(conn, TENANT, device_id)
                key = await issue_device_key(conn, device_id)
                vehicle = await create_vehicle(conn, TENANT, f"Chaos vehicle {index}")
                await assign_device(conn, device_id, vehicle, datetime(2020, 1, 1, tzinfo=UTC))
                proxy = TcpProxy("127.0.0.1", self.broker.port)
                await proxy.start()
                device = Device(
                    index,
                    device_id,
                    self.root / device_id,
                    40 if index == CAP_DEVICE else 10,
                    10.0 if index == CAP_DEVICE else 5.0,
                    _SKEWS_MS.get(index, 0),
                    proxy,
                    key.hex(),
                )
                device.dir.mkdir()
                self.devices.append(device)
        finally:
            await conn.close()
        self.replayer = Replayer(self.broker.port, self.rng)
        self.replayer.start()
        for device in self.devices:
            device.start()

    async def _apply(self, fault: Fault) -> None:
        targets = [self.devices[i] for i in fault.targets]
        kind = fault.kind
        if kind in ("cut", "cap_fill"):
            for d in targets:
                await d.proxy.cut()
            await asyncio.sleep(fault.duration_s)
            for d in targets:
                await d.proxy.restore()
        elif kind == "blackhole":
            for d in targets:
                await d.proxy.blackhole()
            await asyncio.sleep(fault.duration_s)
            for d in targets:
                await d.proxy.restore()
        elif kind in ("delay", "throttle"):
            for d in targets:
                if kind == "delay":
                    d.proxy.delay(fault.strength)
                else:
                    d.proxy.throttle(fault.strength)
            await asyncio.sleep(fault.duration_s)
            for d in targets:
                await d.proxy.restore()
        elif kind == "agent_kill9":
            (d,) = targets
            d.kill9()
            await asyncio.sleep(fault.duration_s)
            d.start()
        elif kind == "reinstall":
            (d,) = targets
            await asyncio.to_thread(d.stop)
            d.ledger.read(d.outbox, wiped=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{d.outbox}{suffix}").unlink(missing_ok=True)
            await asyncio.sleep(fault.duration_s)
            d.start()
        elif kind == "broker_restart":
            await asyncio.to_thread(self.broker.stop)
            await asyncio.sleep(fault.duration_s)
            await asyncio.to_thread(self.broker.start)
        elif kind == "cloud_kill9":
            self.cloud.kill9()
            await asyncio.sleep(fault.duration_s)
            self.cloud.start()
        elif kind == "pg_restart":
            await asyncio.to_thread(self.pg.crash_restart)
        elif kind == "replay":
            assert self.replayer is not None
            self.replayer.replay(int(fault.strength))

    async def _recover(self) -> float:
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await self._wait(lambda: self._all_ready_and_drained(), _RECOVERY_LIMIT_S, "recovery")
        return time.monotonic() - started

    async def _all_ready_and_drained(self) -> bool:
        return await self._ready() and await asyncio.to_thread(self._drained)

    async def _finish(self) -> None:
        for d in self.devices:
            await d.proxy.restore()
        await self._wait(self._all_ready_and_drained, 180, "the fleet catching up")
        await asyncio.gather(*(asyncio.to_thread(d.stop) for d in self.devices))
        await asyncio.sleep(2)  # the last acks' batches are committed before their acks
        for d in self.devices:
            d.ledger.read(d.outbox, wiped=False)

    async def run(self) -> Summary:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        watcher: asyncio.Task[None] | None = None
        ran: list[tuple[Fault, float]] = []
        try:
            self.say(f"chaos: services and {self.vehicles} agents starting in {self.root}")
            await self._setup()
            watcher = asyncio.create_task(self._watch_backlog())
            await asyncio.sleep(5 if self.quick else 15)
            end = time.monotonic() + self.minutes * 60
            for fault in faults(self.seed, self.vehicles, CAP_DEVICE, self.quick):
                if time.monotonic() + fault.duration_s > end and len(ran) >= len(KINDS):
                    break  # time is up, and every kind ran at least once
                self.say(f"chaos: {fault.describe()}")
                await self._apply(fault)
                recovery = await self._recover()
                ran.append((fault, recovery))
                await asyncio.sleep(
                    self.rng.uniform(0.5, 2.0) if self.quick else self.rng.uniform(1, 5)
                )
            self.say("chaos: faults done; draining and stopping the agents")
            await self._finish()
            conn = await asyncpg.connect(self.pg.url)
            try:
                counted = await tally(conn, TENANT, {d.id: d.ledger for d in self.devices})
            finally:
                await conn.close()
        finally:
            if watcher is not None:
                watcher.cancel()
            await self._teardown()
        longest = max(ran, key=lambda fr: fr[1]) if ran else None
        return Summary(
            self.seed,
            self.vehicles,
            self.minutes,
            counted,
            self.largest[0],
            self.largest[1],
            longest[1] if longest else 0.0,
            longest[0].describe().strip() if longest else "-",
            ran,
            self.replayer.replayed if self.replayer else 0,
        )

    async def _teardown(self) -> None:
        for d in self.devices:
            d.kill9()
            await d.proxy.stop()
        if self.replayer is not None:
            self.replayer.stop()
        self.cloud.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.broker.stop)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.pg.stop)
        if self._session is not None:
            await self._session.close()


def run_chaos(
    vehicles: int, minutes: float, seed: int | None = None, keep: bool = False, quick: bool = False
) -> Summary:
    """Run a chaos run and return its summary; its files are removed unless ``keep``."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    chaos = ChaosRun(vehicles, minutes, seed, quick=quick)
    try:
        return asyncio.run(chaos.run())
    finally:
        if not keep:
            shutil.rmtree(chaos.root, ignore_errors=True)
