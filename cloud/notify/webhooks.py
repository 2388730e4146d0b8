"""Webhook deliveries: signed POSTs of queued events, retried with jittered exponential backoff.

Each delivery row is claimed (its next attempt pushed out by a lease, so two replicas never
send it at once), sent, and its outcome recorded: ``delivered`` on any 2xx, otherwise retried
until ``max_attempts``, then ``failed``. The delivery log keeps every row; a replay queues a
new delivery of the same payload. Redirects are not followed. Secrets are decrypted only to
sign and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import aiohttp
import asyncpg

from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE
from fleetlink.cloud.ingest.supervision import SupervisedTask
from fleetlink.cloud.notify.backoff import backoff_s
from fleetlink.cloud.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from fleetlink.cloud.notify.targets import TargetError, check_target
from fleetlink.cloud.records.field_crypto import FieldCipher, FieldCryptoError
from fleetlink.shared.version import VERSION

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "vehicle.registered",
    "vehicle.maintenance_scheduled",
    "vehicle.telemetry_alert",
    "driver.behavior_score_updated",
    "geofence.enter",
    "geofence.exit",
    "geofence.dwell",
    "webhook.test",
)
_LEASE_S = 120
_MAX_ERROR = 500


def secret_context(tenant: str, webhook_id: uuid.UUID) -> str:
    """The associated data a webhook's encrypted secret is bound to."""
    return f"webhooks.secret:{tenant}:{webhook_id}"


async def enqueue(
    conn: asyncpg.Connection,
    tenant: str,
    event_type: str,
    data: dict[str, object],
    severity: str = "info",
) -> uuid.UUID:
    """Queue ``event_type`` for every webhook and email rule of ``tenant`` that asks for it, in
    the caller's transaction; return the event's id."""

    event_id: uuid.UUID = await conn.fetchval(
        "SELECT fleetlink_notify($1, $2, $3, $4::text::jsonb)",
        tenant,
        event_type,
        severity,
        json.dumps(data, default=str),
    )
    return event_id


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status: int | None
    error: str | None
    permanent: bool = False


class WebhookDispatcher:
    """Delivers due webhook rows from every tenant (runs with the owner's pool)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: FieldCipher,
        *,
        allow_private: bool,
        timeout_s: float = 10.0,
        max_attempts: int = 8,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 3600.0,
        poll_s: float = 1.0,
        concurrency: int = 16,
    ) -> None:
        self._pool = pool
        self._cipher = cipher
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_attempts = max_attempts
        self._backoff = (backoff_base_s, backoff_max_s)
        self._poll_s = poll_s
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self.counters: Counter[str] = Counter()
        self._task = SupervisedTask("webhook dispatcher", self._run, self.counters)
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        """Look for due deliveries now (one was just queued)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                tried = await self.deliver_due()
            except DATABASE_UNAVAILABLE:
                tried = 0
            if not tried:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def deliver_due(self, limit: int = 50) -> int:
        """Send the deliveries due now; return how many were tried."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """UPDATE webhook_deliveries d
                   SET attempts = d.attempts + 1,
                       next_attempt_at = now() + make_interval(secs => $2)
                   FROM webhooks w
                   WHERE w.id = d.webhook_id AND d.id IN (
                       SELECT id FROM webhook_deliveries
                       WHERE status = 'pending' AND next_attempt_at <= now()
                       ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                   RETURNING d.id, d.tenant_id, d.webhook_id, d.event_type, d.payload::text AS body,
                             d.attempts, w.url, w.secret_enc, w.active""",
                limit,
                _LEASE_S,
            )
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        async with self._slots:
            outcome = await self._send(row)
        final = outcome.delivered or outcome.permanent or row["attempts"] >= self._max_attempts
        status = "delivered" if outcome.delivered else ("failed" if final else "pending")
        self.counters[f"webhook_{status}"] += 1
        delay = 0.0 if final else backoff_s(row["attempts"], *self._backoff)
        async with self._pool.acquire() as conn:
            await conn.execute(
                """UPDATE webhook_deliveries SET status = $2, last_status = $3, last_error = $4,
                          next_attempt_at = now() + make_interval(secs => $5),
                          delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
                   WHERE id = $1""",
                row["id"],
                status,
                outcome.status,
                outcome.error,
                delay,
            )

    async def _send(self, row: asyncpg.Record) -> Outcome:
        if not row["active"]:
            return Outcome(False, None, "the webhook is disabled", permanent=True)
        try:
            await check_target(row["url"], self._allow_private)
        except TargetError as exc:
            return Outcome(False, None, str(exc), permanent=True)
        try:
            secret = self._cipher.decrypt(
                row["secret_enc"], secret_context(row["tenant_id"], row["webhook_id"])
            )
        except FieldCryptoError:
            return Outcome(False, None, "the signing secret does not decrypt with this key ring")
        body = row["body"].encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Fleetlink-Webhooks/{VERSION}",
            "Fleetlink-Event": row["event_type"],
            "Fleetlink-Delivery": str(row["id"]),
            "Fleetlink-Webhook": str(row["webhook_id"]),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, body),
        }
        assert self._session is not None
        try:
            async with self._session.post(
                row["url"], data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return Outcome(True, response.status, None)
                return Outcome(False, response.status, f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:_MAX_ERROR])
