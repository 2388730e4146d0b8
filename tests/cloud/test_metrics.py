"""``/metrics`` on the API service: values move after real traffic (an MQTT batch committed
and acked, API requests by route), and every response carries a request id."""

import re

import asyncpg
import pytest

from fleetlink.cloud.app import create_app

from .conftest import AckListener, Fleet, bearer, ingest_settings, member_token
from .helpers import SPEED, now_ms, telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _value(text: str, name: str, **labels: str) -> float:
    """Return the sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? ([0-9.e+-]+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def test_metrics_count_committed_batches_ack_latency_and_api_requests_by_route(
    aiohttp_client, migrated_db, mqtt_broker, fleet: Fleet, publisher, ack_listener: AckListener
):
    settings = ingest_settings(migrated_db, mqtt_broker.url)
    async with asyncpg.create_pool(migrated_db, min_size=1, max_size=1) as pool:
        token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    client = await aiohttp_client(create_app(settings), headers=bearer(token))
    before = await (await client.get("/metrics")).text()

    device = fleet.devices[0]
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, base_ms=now_ms() - 5_000, values={SPEED: [40.0, 41.0, 42.0]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
    vehicle = fleet.vehicles[device]
    response = await client.get(
        f"/api/v1/vehicles/{vehicle}/signals/latest", headers={"X-Request-Id": "trace-42"}
    )
    assert response.status == 200
    assert response.headers["X-Request-Id"] == "trace-42"
    assert (await client.get("/no-such-page")).headers["X-Request-Id"]

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    after = await response.text()

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("fleetlink_ingest_outcomes_total", counter="batches") >= 1
    assert grew("fleetlink_ingest_outcomes_total", counter="samples") >= 3
    assert grew("fleetlink_ingest_ack_latency_seconds_count") >= 1
    assert grew("fleetlink_ingest_commit_seconds_count") >= 1
    route = "/api/v1/vehicles/{vehicle_id}/signals/latest"
    assert grew("fleetlink_http_request_seconds_count", route=route, status="2xx") == 1
    assert grew("fleetlink_http_request_seconds_count", route="unmatched", status="4xx") == 1
    assert _value(after, "fleetlink_ingest_connected") >= 1
