"""Notifications: signed webhooks retried with backoff, a delivery log with replay, SSRF care,
and email through a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from email import message_from_bytes
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from fleetlink.cloud.app import create_app
from fleetlink.cloud.notify.backoff import backoff_s
from fleetlink.cloud.notify.email import Attachment, EmailSender
from fleetlink.cloud.notify.signing import signature, verify
from fleetlink.cloud.notify.targets import TargetError, check_target
from tests.conftest import free_port

from .conftest import AckListener, Fleet, bearer, ingest_settings, member_token
from .helpers import events, events_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_signature_recipe_accepts_the_sent_body_only_and_only_while_fresh() -> None:
    secret, body, now = "whsec_abc", b'{"type":"geofence.enter"}', 1_800_000_000
    sent = signature(secret, now, body)
    assert sent.startswith("v1=") and len(sent) == 3 + 64
    assert verify(secret, str(now), sent, body, now=now + 10)
    assert not verify(secret, str(now), sent, body + b" ", now=now)
    assert not verify("whsec_other", str(now), sent, body, now=now)
    assert not verify(secret, str(now), sent, body, now=now + 301)  # a replay, too late
    assert not verify(secret, "not a number", sent, body, now=now)


async def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempt, ceiling in ((1, 5.0), (2, 10.0), (3, 20.0), (20, 3600.0)):
        delays = [backoff_s(attempt, 5.0, 3600.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not all the same


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
    ],
)
async def test_production_refuses_webhooks_to_this_machine_and_private_networks(url: str) -> None:
    with pytest.raises(TargetError, match="private, loopback or reserved"):
        await check_target(url, allow_private=False)
    await check_target(url, allow_private=True)  # dev and test mode may


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "/relative", "https://user:pw@example.com/", "http://h:99999/"]
)
async def test_webhook_urls_must_be_absolute_http_without_credentials(url: str) -> None:
    with pytest.raises(TargetError):
        await check_target(url, allow_private=True)


async def test_a_public_address_is_accepted_in_production() -> None:
    await check_target("https://93.184.216.34/hook", allow_private=False)


class Receiver:
    """A webhook receiver on loopback that fails its first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes, float]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read(), time.monotonic()))
        if len(self.requests) <= self.failures:
            return web.Response(status=503)
        return web.Response(status=204)


@pytest.fixture
async def receiver(aiohttp_server):  # type: ignore[no-untyped-def]
    hook = Receiver(failures=2)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = await aiohttp_server(app)
    hook.url = f"http://127.0.0.1:{server.port}/hook"  # type: ignore[attr-defined]
    return hook


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():  # type: ignore[no-untyped-def]
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.port = port  # type: ignore[attr-defined]
    yield mailbox
    controller.stop()


async def _wait(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_device_alerts_reach_a_signed_webhook_after_retries_and_email_and_replay(
    aiohttp_client,
    migrated_db,
    mqtt_broker,
    pool: asyncpg.Pool,
    fleet: Fleet,
    publisher,
    ack_listener: AckListener,
    receiver: Receiver,
    smtp_server: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ingest_settings(
        migrated_db,
        mqtt_broker.url,
        webhook_backoff_base_s=0.2,
        notify_poll_s=0.02,
        smtp_url=f"smtp://127.0.0.1:{smtp_server.port}",  # type: ignore[attr-defined]
        smtp_from="alerts@fleet.example",
    )
    client = await aiohttp_client(create_app(settings))
    owner = bearer(await member_token(pool, fleet.tenant, "owner"))
    created = await client.post(
        "/api/v1/webhooks",
        json={
            "url": receiver.url,  # type: ignore[attr-defined]
            "event_types": ["vehicle.telemetry_alert", "vehicle.registered"],
        },
        headers=owner,
    )
    assert created.status == 201, await created.text()
    webhook = await created.json()
    secret = webhook["secret"]
    shown = await (await client.get(f"/api/v1/webhooks/{webhook['id']}", headers=owner)).json()
    assert "secret" not in shown
    stored = await pool.fetchval(
        "SELECT secret_enc FROM webhooks WHERE id = $1::uuid", webhook["id"]
    )
    assert secret not in stored
    rule = await client.post(
        "/api/v1/email-rules",
        json={"recipients": ["manager@fleet.example"], "event_types": ["vehicle.telemetry_alert"]},
        headers=owner,
    )
    assert rule.status == 201, await rule.text()

    device = fleet.devices[0]
    payload, ids = events(device, 1, count=1)  # one harsh_braking, severity warning
    publisher.publish(events_topic(fleet.tenant, device), payload, qos=1)
    await _wait(lambda: len(receiver.requests) == 3)
    headers, body, _ = receiver.requests[-1]
    assert headers["Fleetlink-Event"] == "vehicle.telemetry_alert"
    assert verify(secret, headers["Fleetlink-Timestamp"], headers["Fleetlink-Signature"], body)
    assert [r[1] for r in receiver.requests] == [body] * 3  # the same bytes each attempt
    gaps = [b[2] - a[2] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    # Retry n waits between half and all of 0.2 s * 2^(n-1): backing off, with jitter.
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2

    log_url = f"/api/v1/webhooks/{webhook['id']}/deliveries"
    deliveries = (await (await client.get(log_url, headers=owner)).json())["items"]
    for _ in range(50):
        if deliveries[0]["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
        deliveries = (await (await client.get(log_url, headers=owner)).json())["items"]
    assert [(d["status"], d["attempts"], d["last_status"]) for d in deliveries] == [
        ("delivered", 3, 204)
    ]
    assert deliveries[0]["payload"]["data"]["event_id"] == str(ids[0])

    replayed = await client.post(f"{log_url}/{deliveries[0]['id']}/replay", headers=owner)
    assert replayed.status == 201
    await _wait(lambda: len(receiver.requests) == 4)
    assert receiver.requests[-1][1] == body
    assert (await replayed.json())["replay_of"] == deliveries[0]["id"]

    vehicle = await client.post("/api/v1/vehicles", json={"name": "new van"}, headers=owner)
    assert vehicle.status == 201
    await _wait(lambda: len(receiver.requests) == 5)
    assert receiver.requests[-1][0]["Fleetlink-Event"] == "vehicle.registered"

    await _wait(lambda: len(smtp_server.messages) == 1)
    sender, recipients, raw = smtp_server.messages[0]
    assert (sender, recipients) == ("alerts@fleet.example", ["manager@fleet.example"])
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "[Fleetlink] vehicle.telemetry_alert (warning)"
    assert "harsh_braking" in mail.get_payload()
    assert secret not in caplog.text


async def test_the_email_sender_is_reusable_with_attachments(smtp_server: Mailbox) -> None:
    sender = EmailSender.from_url(
        f"smtp://127.0.0.1:{smtp_server.port}",
        "reports@fleet.example",  # type: ignore[attr-defined]
    )
    await sender.send(
        ["a@fleet.example", "b@fleet.example"],
        "Weekly trips",
        "Attached.",
        (Attachment("trips.csv", b"vehicle,km\nvan,12.5\n"),),
    )
    _, recipients, raw = smtp_server.messages[0]
    assert recipients == ["a@fleet.example", "b@fleet.example"]
    parts = [p for p in message_from_bytes(raw).walk() if p.get_filename() == "trips.csv"]
    assert parts[0].get_payload(decode=True) == b"vehicle,km\nvan,12.5\n"
