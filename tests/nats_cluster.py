"""A real three-node NATS cluster (JetStream + MQTT gateway) on free loopback ports.

Each node gets its own ``server_name``, JetStream store directory, cluster route port and
MQTT port; ``kill`` ends one node the hard way (SIGKILL), as a crashed machine would.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.conftest import _port_open, free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@dataclass
class NatsNode:
    name: str
    client_port: int
    route_port: int
    mqtt_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"


@dataclass
class NatsCluster:
    root: Path
    nodes: list[NatsNode] = field(default_factory=list)

    @property
    def nats_urls(self) -> str:
        """Return every node's client URL, comma-separated (FLEETLINK_NATS_URL)."""
        return ",".join(n.nats_url for n in self.nodes)

    def start(self, size: int = 3) -> None:
        """Start ``size`` nodes routed to each other; return once each listens."""
        self.nodes = [NatsNode(f"n{i}", free_port(), free_port(), free_port()) for i in range(size)]
        routes = ", ".join(f"nats-route://127.0.0.1:{n.route_port}" for n in self.nodes)
        for node in self.nodes:
            store = self.root / node.name
            store.mkdir(parents=True, exist_ok=True)
            conf = self.root / f"{node.name}.conf"
            conf.write_text(
                f"server_name: {node.name}\n"
                f"listen: 127.0.0.1:{node.client_port}\n"
                f'jetstream {{ store_dir: "{store}", max_mem: 64MB, max_file: 512MB }}\n'
                f"cluster {{ name: fleetlink, listen: 127.0.0.1:{node.route_port}, "
                f"routes: [{routes}] }}\n"
                # Devices' subscriptions become JetStream consumers: one replica in memory
                # each (a clean session re-creates them on whichever node it reaches).
                f"mqtt {{ listen: 127.0.0.1:{node.mqtt_port}, stream_replicas: {size}, "
                "consumer_replicas: 1, consumer_memory_storage: true }\n"
            )
            log = (self.root / f"{node.name}.log").open("ab")
            # Set as each starts: stop() ends the nodes started so far if a later one fails.
            node.process = subprocess.Popen(
                [NATS_SERVER, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        for node in self.nodes:
            while not (_port_open("127.0.0.1", node.client_port)):
                if time.monotonic() > deadline:
                    raise AssertionError(f"NATS node {node.name} did not start; see {self.root}")
                time.sleep(0.05)

    async def wait_jetstream(self, timeout_s: float = 30) -> None:
        """Return once the cluster has elected a JetStream leader (it then takes streams)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                nc = await nats.connect(self.nats_urls.split(","), connect_timeout=1)
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError("the NATS cluster elected no JetStream leader") from None
                await asyncio.sleep(0.3)

    def wait_mqtt(self, timeout_s: float = 60) -> None:
        """Return once every node's MQTT gateway accepts a connection and a QoS 1
        subscription. The gateway creates its JetStream streams on first use; doing that once,
        node by node, keeps the devices' first connections from timing out on it."""
        for node in self.nodes:
            deadline = time.monotonic() + timeout_s
            while not _mqtt_subscribes(node.mqtt_port):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the MQTT gateway of {node.name} does not answer")

    def kill(self, index: int) -> None:
        """End one node at once (SIGKILL)."""
        process = self.nodes[index].process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()


def _mqtt_subscribes(port: int, timeout_s: float = 10) -> bool:
    """Return True if an MQTT 3.1.1 client gets CONNACK and SUBACK (QoS 1) at ``port``."""
    subscribed = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"warmup-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv311,
        reconnect_on_failure=False,
    )
    client.on_connect = lambda c, *_: c.subscribe("fl/v1/warmup/warmup/ack", 1)
    client.on_subscribe = lambda *_: subscribed.set()
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        time.sleep(0.2)
        return False
    client.loop_start()
    try:
        return subscribed.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
