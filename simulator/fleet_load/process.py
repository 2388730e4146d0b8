"""One load-generator process: many virtual devices over a few MQTT connections.

Each device subscribes to its own ack topic, says hello, then publishes one batch per
``period_s`` at an evenly spread phase, keeps what is unacked and resends it after
``resend_s``. The devices of a process share ``connections`` MQTT connections (a real
device has one of its own; sharing them is what lets one process carry tens of thousands of
devices while each still speaks the real protocol: its own topics, seqs, acks and resends).
paho's network threads only decode acks into a list; the asyncio loop does the rest.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleetlink.shared.codec import CodecError, decode
from fleetlink.shared.messages import Ack
from fleetlink.simulator.fleet_load.devices import VirtualDevice

_SUBSCRIBE_CHUNK = 1000
_TICK_S = 0.02


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What one process runs: its devices and the schedule."""

    mqtt_url: str
    tenant: str
    device_ids: list[str]
    period_s: float = 10.0
    duration_s: float = 60.0
    warmup_s: float = 10.0
    resend_s: float = 30.0
    connections: int = 4
    signals: int = 20
    samples_per_signal: int = 1
    hello_timeout_s: float = 60.0


@dataclass
class LoadStats:
    """What one process measured inside its window (after the warm-up)."""

    window_s: float = 0.0
    published: int = 0
    acked: int = 0
    resent: int = 0
    samples_acked: int = 0
    unacked_at_end: int = 0
    not_ready: int = 0
    # Ack latency in whole milliseconds -> count.
    latency_ms: Counter[int] = field(default_factory=Counter)

    def merge(self, other: LoadStats) -> None:
        self.window_s = max(self.window_s, other.window_s)
        self.published += other.published
        self.acked += other.acked
        self.resent += other.resent
        self.samples_acked += other.samples_acked
        self.unacked_at_end += other.unacked_at_end
        self.not_ready += other.not_ready
        self.latency_ms.update(other.latency_ms)

    def percentile_ms(self, p: float) -> float:
        """Return the ``p``-th percentile ack latency in ms (nan when nothing was acked)."""
        total = sum(self.latency_ms.values())
        if not total:
            return float("nan")
        rank = p / 100 * total
        seen = 0
        for ms in sorted(self.latency_ms):
            seen += self.latency_ms[ms]
            if seen >= rank:
                return float(ms)
        return float(max(self.latency_ms))


class _Connection:
    """One paho client carrying some devices' publishes and ack subscriptions."""

    def __init__(self, url: str, name: str, inbox: list[tuple[float, bytes]]) -> None:
        parts = urlsplit(url)
        self._inbox = inbox
        self._lock = threading.Lock()
        self.subscribed = 0
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv311
        )
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.max_inflight_messages_set(65535)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=60)
        self.client.loop_start()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._lock:
            self.subscribed += len(reason_codes)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self._inbox.append((time.monotonic(), bytes(message.payload)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def run_load(plan: LoadPlan, on_window: asyncio.Event | None = None) -> LoadStats:
    """Run ``plan`` and return what was measured after the warm-up.

    Raises TimeoutError if the broker does not accept the connections or subscriptions.
    """
    devices = [
        VirtualDevice(plan.tenant, d, plan.signals, plan.samples_per_signal)
        for d in plan.device_ids
    ]
    by_id = {d.device_id: d for d in devices}
    inbox: list[tuple[float, bytes]] = []
    run_id = uuid.uuid4().hex[:8]
    connections = [
        _Connection(plan.mqtt_url, f"fleet-load-{run_id}-{n}", inbox)
        for n in range(max(1, min(plan.connections, len(devices))))
    ]
    route = {d.device_id: connections[i % len(connections)] for i, d in enumerate(devices)}
    stats = LoadStats()
    try:
        await _wait(lambda: all(c.connected.is_set() for c in connections), 15, "connect")
        for c in connections:
            topics = [d.ack_topic for d in devices if route[d.device_id] is c]
            for start in range(0, len(topics), _SUBSCRIBE_CHUNK):
                c.client.subscribe([(t, 1) for t in topics[start : start + _SUBSCRIBE_CHUNK]])
        await _wait(lambda: sum(c.subscribed for c in connections) >= len(devices), 60, "subscribe")
        for d in devices:
            hello_topic, payload = d.hello()
            route[d.device_id].client.publish(hello_topic, payload, qos=1)
        deadline = time.monotonic() + plan.hello_timeout_s
        while time.monotonic() < deadline and not all(d.ready for d in devices):
            _drain(inbox, by_id, None)
            await asyncio.sleep(0.05)
        stats.not_ready = sum(not d.ready for d in devices)
        await _schedule(plan, devices, route, inbox, by_id, stats, on_window)
    finally:
        for c in connections:
            c.close()
    return stats


async def _wait(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the broker did not {what} the load generator in {timeout_s} s")
        await asyncio.sleep(0.05)


def _drain(
    inbox: list[tuple[float, bytes]],
    by_id: dict[str, VirtualDevice],
    stats: LoadStats | None,
) -> None:
    items = inbox[:]
    del inbox[: len(items)]
    for at, payload in items:
        try:
            ack = decode(payload, Ack)
        except CodecError:
            continue
        device = by_id.get(ack.device_id)
        if device is None:
            continue
        latencies = device.on_ack(ack, at)
        if stats is not None:
            for latency in latencies:
                stats.latency_ms[int(latency * 1000)] += 1
            stats.acked += len(latencies)
            stats.samples_acked += len(latencies) * device.signals * device.samples_per_signal


async def _schedule(
    plan: LoadPlan,
    devices: list[VirtualDevice],
    route: dict[str, _Connection],
    inbox: list[tuple[float, bytes]],
    by_id: dict[str, VirtualDevice],
    stats: LoadStats,
    on_window: asyncio.Event | None,
) -> None:
    """Publish each device's batches at evenly spread phases; measure after the warm-up."""
    interval = plan.period_s / len(devices)
    began = time.monotonic()
    window_start = began + plan.warmup_s
    end = window_start + plan.duration_s
    emitted = 0
    next_resend_scan = began + 1.0
    measuring = False
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if not measuring and now >= window_start:
            measuring = True
            if on_window is not None:
                on_window.set()
        _drain(inbox, by_id, stats if measuring else None)
        due = int((now - began) / interval)
        now_ms = int(time.time() * 1000)
        while emitted < due:
            device = devices[emitted % len(devices)]
            emitted += 1
            _, payload = device.next_batch(now_ms, now)
            route[device.device_id].client.publish(device.telemetry_topic, payload, qos=1)
            if measuring:
                stats.published += 1
        if now >= next_resend_scan:
            next_resend_scan = now + 1.0
            for device in devices:
                if not device.outbox:
                    continue
                for _, payload in device.due_resends(now, plan.resend_s):
                    route[device.device_id].client.publish(device.telemetry_topic, payload, qos=1)
                    if measuring:
                        stats.resent += 1
        await asyncio.sleep(_TICK_S)
    stats.window_s = time.monotonic() - window_start
    _drain(inbox, by_id, stats)
    stats.unacked_at_end = sum(len(d.outbox) for d in devices)
