"""Scale-out on a real broker cluster: three NATS nodes (MQTT gateway on JetStream), devices
spread over them, two ingest processes sharing one JetStream consumer. One broker node and one
ingest process are killed mid-run; every batch must still be stored exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from fleetlink.edge.config import DeviceSection, MqttSection
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.uplink import Uplink
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Series, TelemetryBatch
from tests.cloud.conftest import make_fleet
from tests.cloud.helpers import SPEED, now_ms
from tests.conftest import free_port
from tests.nats_cluster import NATS_SERVER, NatsCluster
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

DEVICES = 6
BATCHES = 30
SAMPLES = 3


def _batch(device: str, index: int, base_ms: int):  # type: ignore[no-untyped-def]
    """Return a builder of the ``index``-th batch of ``device``: values unique per batch."""

    def build(seq: int) -> bytes:
        values = [index * 10.0 + k for k in range(SAMPLES)]
        series = [
            Series(signal_id=SPEED, offsets_ms=[k * 100 for k in range(SAMPLES)], values=values)
        ]
        return encode(
            TelemetryBatch(
                device_id=device,
                seq=seq,
                base_time_ms=base_ms + index * 1000,
                series=series,
            )
        )

    return build


def _readyz(port: int) -> dict[str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return json.loads(answer.read())["checks"]  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())["checks"]  # type: ignore[no-any-return]
    except OSError:
        return {}


def _committed(port: int) -> bool:
    return _readyz(port).get("ingest_last_commit_age_s", "never") != "never"


def _spawn_ingest(
    name: str, database_url: str, cluster: NatsCluster, http_port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FLEETLINK_MODE": "demo",
        "FLEETLINK_DATABASE_URL": database_url,
        "FLEETLINK_INGEST_SOURCE": "nats",
        "FLEETLINK_NATS_URL": cluster.nats_urls,
        "FLEETLINK_NATS_STREAM_REPLICAS": "3",
        "FLEETLINK_NATS_ACK_WAIT_S": "3",
        "FLEETLINK_MQTT_CLIENT_ID": name,
        "FLEETLINK_INGEST_MAX_WAIT_MS": "20",
        "FLEETLINK_HTTP_PORT": str(http_port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fleetlink", "cloud", "serve", "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        env=env,
    )


@pytest.mark.timeout(150)
async def test_a_cluster_losing_a_broker_node_and_an_ingest_process_stores_every_batch_once(
    pool: asyncpg.Pool, migrated_db: str, tmp_path: Path
) -> None:
    assert Path(NATS_SERVER).exists(), "nats-server is missing (tests/run.sh installs it)"
    cluster = NatsCluster(tmp_path / "nats")
    fleet = await make_fleet(pool, DEVICES)
    ports = [free_port(), free_port()]
    ingest: list[subprocess.Popen[bytes]] = []
    uplinks: list[Uplink] = []
    outboxes: list[Outbox] = []
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        cluster.start()
        await cluster.wait_jetstream()
        await asyncio.to_thread(cluster.wait_mqtt)
        for i, port in enumerate(ports):
            ingest.append(
                _spawn_ingest(
                    f"ingest-{i}", migrated_db, cluster, port, tmp_path / f"ingest{i}.log"
                )
            )
        for port in ports:
            await eventually(lambda p=port: _readyz(p).get("ingest") == "ok", 30, "ingest ready")

        # Device i connects to node i % 3 and knows the other nodes as failovers.
        for i, device in enumerate(fleet.devices):
            urls = [n.mqtt_url for n in cluster.nodes]
            first = i % len(urls)
            mqtt = MqttSection(
                url=urls[first],
                failover_urls=urls[first + 1 :] + urls[:first],
                protocol="3.1.1",
                subscribe_qos=0,
                ack_timeout_s=3.0,
                reconnect_max_s=1,
                max_inflight=10,
            )
            outbox = Outbox(tmp_path / f"{device}.sqlite3")
            outboxes.append(outbox)
            uplink = Uplink(DeviceSection(id=device, tenant=fleet.tenant), mqtt, outbox)
            uplinks.append(uplink)
            tasks.append(asyncio.create_task(uplink.run(stop)))

        base_ms = now_ms() - 3_600_000

        async def produce(start: int, end: int) -> None:
            for index in range(start, end):
                for outbox, uplink, device in zip(outboxes, uplinks, fleet.devices, strict=True):
                    outbox.add("telemetry", _batch(device, index, base_ms), SAMPLES)
                    uplink.wake()
                await asyncio.sleep(0.1)

        def state() -> str:
            return "; ".join(
                f"{d}: {len(o)} left, {dict(u.counters)}"
                for d, o, u in zip(fleet.devices, outboxes, uplinks, strict=True)
            )

        await produce(0, BATCHES // 3)
        # Every device answered and its first third stored, by both ingest processes.
        await eventually(lambda: all(len(o) == 0 for o in outboxes), 45, "first third stored")
        assert all(_committed(p) for p in ports), "both ingest processes stored batches"
        cluster.kill(0)  # devices 0 and 3 were connected to node 0
        await produce(BATCHES // 3, 2 * BATCHES // 3)
        ingest[0].kill()  # mid-run, with whatever it holds unacked
        ingest[0].wait(timeout=10)
        await produce(2 * BATCHES // 3, BATCHES)
        try:
            await eventually(lambda: all(len(o) == 0 for o in outboxes), 60, "all stored")
        except AssertionError:
            raise AssertionError(
                f"outboxes not drained: {state()}; ingest: {_readyz(ports[1])}"
            ) from None

        for device in fleet.devices:
            seqs = await pool.fetch(
                "SELECT seq FROM ingested_batches WHERE device_id = $1 ORDER BY seq", device
            )
            assert [r["seq"] for r in seqs] == list(range(1, BATCHES + 1)), device
            rows = await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device)
            distinct = await pool.fetchval(
                "SELECT count(DISTINCT (ts, value)) FROM samples WHERE device_id = $1", device
            )
            assert rows == distinct == BATCHES * SAMPLES, device
        moved = [u for i, u in enumerate(uplinks) if i % 3 == 0]
        assert all(u.counters["broker_switches"] >= 1 for u in moved)
        assert _committed(ports[1]) and _readyz(ports[1]).get("ingest") == "ok"
    finally:
        stop.set()
        await asyncio.gather(*(asyncio.wait_for(t, 15) for t in tasks), return_exceptions=True)
        for outbox in outboxes:
            outbox.close()
        for process in ingest:
            if process.poll() is None:
                process.terminate()
        for process in ingest:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        cluster.stop()
