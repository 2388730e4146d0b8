"""``sim fleet``'s virtual devices against the real ingest: hello, seqs, acks and resends,
and the report's rates and latency; the device state machine on its own."""

from __future__ import annotations

import asyncio
import re
import sys

import asyncpg
import pytest

from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.shared.messages import Ack
from fleetlink.simulator.fleet_load.devices import VirtualDevice
from fleetlink.simulator.fleet_load.process import LoadPlan, run_load
from fleetlink.simulator.fleet_load.provision import device_ids, provision

from .conftest import ingest_settings


def test_a_virtual_device_resends_what_is_unacked_and_forgets_what_is_acked() -> None:
    device = VirtualDevice("t", "dev-1", signals=3)
    seq_1, payload_1 = device.next_batch(now_ms=1_000_000, now=100.0)
    seq_2, _ = device.next_batch(now_ms=1_010_000, now=110.0)
    assert (seq_1, seq_2) == (1, 2)
    assert device.due_resends(now=125.0, resend_s=30) == []
    assert device.due_resends(now=131.0, resend_s=30) == [(1, payload_1)]
    assert device.due_resends(now=132.0, resend_s=30) == []  # resent just now
    latencies = device.on_ack(Ack(device_id="dev-1", seqs=[1], high_water=1), now=131.5)
    assert latencies == [31.5] and set(device.outbox) == {2}
    _, hello = device.hello()
    answer = Ack(device_id="dev-1", seqs=[], high_water=40, nonce=device.nonce)
    device.on_ack(answer, now=140.0)
    assert device.ready and device.next_seq == 41
    assert hello


@pytest.mark.asyncio(loop_scope="session")
async def test_a_load_fleet_is_answered_and_every_batch_acked_by_the_real_ingest(
    migrated_db: str, mqtt_broker
) -> None:  # type: ignore[no-untyped-def]
    tenant = "fleetload-test"
    ids = device_ids("fl-test-", 40)
    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await provision(conn, tenant, ids)
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    try:
        plan = LoadPlan(
            mqtt_broker.url,
            tenant,
            ids,
            period_s=1.0,
            duration_s=3.0,
            warmup_s=1.0,
            connections=2,
            signals=5,
        )
        stats = await run_load(plan)
    finally:
        await service.stop()
    stored = await pool.fetchval(
        "SELECT count(*) FROM ingested_batches WHERE tenant_id = $1", tenant
    )
    await pool.close()
    assert stats.not_ready == 0
    assert stats.published >= 100  # 40 devices, one batch a second, 3 s measured
    assert stats.acked >= stats.published - 40  # at most the last batch each still in flight
    assert stats.samples_acked == stats.acked * 5
    assert stats.percentile_ms(99) < 5000
    assert stored >= stats.acked


@pytest.mark.asyncio(loop_scope="session")
async def test_the_sim_fleet_command_registers_its_devices_and_reports_what_was_acked(
    migrated_db: str, mqtt_broker
) -> None:  # type: ignore[no-untyped-def]
    tenant = "fleetcli-test"
    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=4)
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    try:
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetlink", "sim", "fleet",
            "--vehicles", "20", "--rate", "1", "--duration", "3", "--warmup", "1",
            "--signals", "4", "--tenant", tenant, "--prefix", "fl-cli-",
            "--mqtt-url", mqtt_broker.url, "--provision-url", migrated_db,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output = (await asyncio.wait_for(command.communicate(), 120))[0].decode()
    finally:
        await service.stop()
    stored = await pool.fetchval(
        "SELECT count(*) FROM ingested_batches WHERE tenant_id = $1", tenant
    )
    await pool.close()
    assert command.returncode == 0, output
    assert "registered 20 new devices" in output
    acked = re.search(r"acked ([\d,]+) msg/s, ([\d,]+) samples/s", output)
    assert acked is not None, output
    assert int(acked[1].replace(",", "")) >= 15  # 20 devices, one batch a second each
    assert "devices without hello answer 0" in output
    assert stored >= 40
