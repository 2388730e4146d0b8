"""``/api/v1/webhooks`` and ``/api/v1/email-rules``: where the tenant's events are sent.

A webhook receives signed POSTs (see :mod:`fleetlink.cloud.notify.signing`) of the event types
it subscribes to; its secret is shown once, when it is created, and stored encrypted. Its
delivery log shows every attempt's outcome; any delivery can be replayed. An email rule mails
chosen event types at or above a severity to a list of addresses.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import PageQuery, SortKey, json_body, keyset, split_page
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import FIELD_CIPHER, SETTINGS, WEBHOOK_DISPATCHER
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.notify.signing import new_secret
from fleetlink.cloud.notify.targets import TargetError, check_target
from fleetlink.cloud.notify.webhooks import EVENT_TYPES, secret_context

api = ResourceRoutes("notifications")
routes = api.routes

WEBHOOK_ID = {"description": "Webhook UUID", "schema": {"type": "string", "format": "uuid"}}
DELIVERY_ID = {"description": "Delivery UUID", "schema": {"type": "string", "format": "uuid"}}
RULE_ID = {"description": "Email rule UUID", "schema": {"type": "string", "format": "uuid"}}
MAX_WEBHOOKS = 100
EventType = Literal[
    "*",
    "vehicle.registered",
    "vehicle.maintenance_scheduled",
    "vehicle.telemetry_alert",
    "driver.behavior_score_updated",
    "geofence.enter",
    "geofence.exit",
    "geofence.dwell",
    "webhook.test",
]
assert set(EventType.__args__) == {"*", *EVENT_TYPES}  # type: ignore[attr-defined]


class Webhook(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    active: bool
    created_at: datetime
    version: int


class NewWebhook(Webhook):
    secret: str = Field(description="The signing secret: shown this once, store it now")


class WebhookList(BaseModel):
    items: list[Webhook]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000, description="http(s) URL to POST to")
    description: str = Field("", max_length=500)
    event_types: list[EventType] = Field(min_length=1, max_length=20)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=8, max_length=2000)
    description: str | None = Field(None, max_length=500)
    event_types: list[EventType] | None = Field(None, min_length=1, max_length=20)
    active: bool | None = None


class Delivery(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    replay_of: uuid.UUID | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = None


class DeliveryQuery(PageQuery):
    status: Literal["pending", "delivered", "failed"] | None = None


class Deleted(BaseModel):
    deleted: bool


class EmailRule(BaseModel):
    id: uuid.UUID
    recipients: list[str]
    event_types: list[str]
    min_severity: Literal["info", "warning", "critical"]
    created_at: datetime


class EmailRuleList(BaseModel):
    items: list[EmailRule]


Address = Annotated[
    str, Field(max_length=254, pattern=r"^[^@\s,<>\"]+@[^@\s,<>\"]+\.[^@\s,<>\"]+$")
]


class EmailRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipients: list[Address] = Field(min_length=1, max_length=20)
    event_types: list[EventType] = Field(min_length=1, max_length=20)
    min_severity: Literal["info", "warning", "critical"] = "warning"


_WEBHOOK = "id, url, description, event_types, active, created_at, version"


async def _checked_url(request: web.Request, url: str) -> str:
    try:
        await check_target(url, request.app[SETTINGS].webhooks_may_call_private)
    except TargetError as exc:
        raise ProblemError(422, str(exc), errors=[{"field": "url", "message": str(exc)}]) from None
    return url


async def _webhook(conn: asyncpg.Connection, tenant: str, webhook_id: uuid.UUID) -> Webhook:
    row = await conn.fetchrow(
        f"SELECT {_WEBHOOK} FROM webhooks WHERE tenant_id = $1 AND id = $2", tenant, webhook_id
    )
    if row is None:
        raise ProblemError(404, f"no webhook {webhook_id}")
    return Webhook.model_validate(dict(row))


@api.get(
    "/api/v1/webhooks",
    summary="The tenant's webhooks (secrets are never shown again)",
    response=WebhookList,
    permission=Permission.NOTIFICATIONS_MANAGE,
)
async def list_webhooks(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        page = await webhook_list(conn, principal_of(request).tenant_id)
    return web.json_response(text=page.model_dump_json())


async def webhook_list(conn: asyncpg.Connection, tenant: str) -> WebhookList:
    """Return the tenant's webhooks, oldest first (without their secrets)."""
    rows = await conn.fetch(
        f"SELECT {_WEBHOOK} FROM webhooks WHERE tenant_id = $1 ORDER BY created_at, id", tenant
    )
    return WebhookList(items=[Webhook.model_validate(dict(r)) for r in rows])


@api.post(
    "/api/v1/webhooks",
    summary="Add a webhook; the answer holds its signing secret, shown this once",
    response=NewWebhook,
    permission=Permission.NOTIFICATIONS_MANAGE,
    body=WebhookCreate,
    status=201,
    errors=(400, 409, 415, 422),
)
async def create_webhook(request: web.Request) -> web.Response:
    body: WebhookCreate = await json_body(request, WebhookCreate)
    async with tenant_transaction(request) as conn:
        created = await add_webhook(request, conn, body)
    return web.json_response(text=created.model_dump_json(), status=201)


async def add_webhook(
    request: web.Request, conn: asyncpg.Connection, body: WebhookCreate
) -> NewWebhook:
    """Store ``body`` as a new webhook of the caller's tenant with a new signing secret
    (audited); return it with the secret, which is shown this once.

    Raises ProblemError 422 (a URL the webhooks may not call, with ``errors`` naming ``url``)
    or 409 (the tenant has MAX_WEBHOOKS already).
    """
    url = await _checked_url(request, body.url)
    tenant = principal_of(request).tenant_id
    webhook_id = uuid.uuid4()
    secret = new_secret()
    sealed = request.app[FIELD_CIPHER].encrypt(secret, secret_context(tenant, webhook_id))
    if await conn.fetchval("SELECT count(*) FROM webhooks WHERE tenant_id = $1", tenant) >= (
        MAX_WEBHOOKS
    ):
        raise ProblemError(409, f"a tenant has at most {MAX_WEBHOOKS} webhooks")
    await conn.execute(
        "INSERT INTO webhooks (id, tenant_id, url, description, event_types, secret_enc) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        webhook_id,
        tenant,
        url,
        body.description,
        sorted(set(body.event_types)),
        sealed,
    )
    webhook = await _webhook(conn, tenant, webhook_id)
    await record_change(request, conn, "create", "webhook", webhook_id, after=webhook)
    return NewWebhook(**webhook.model_dump(), secret=secret)


@api.get(
    "/api/v1/webhooks/{webhook_id}",
    summary="One webhook",
    response=Webhook,
    permission=Permission.NOTIFICATIONS_MANAGE,
    path_params={"webhook_id": WEBHOOK_ID},
    errors=(400, 404),
)
async def get_webhook(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    async with tenant_transaction(request) as conn:
        webhook = await _webhook(conn, principal_of(request).tenant_id, webhook_id)
    return web.json_response(text=webhook.model_dump_json())


@api.patch(
    "/api/v1/webhooks/{webhook_id}",
    summary="Change a webhook's URL, event types or description, or pause it",
    response=Webhook,
    permission=Permission.NOTIFICATIONS_MANAGE,
    body=WebhookPatch,
    path_params={"webhook_id": WEBHOOK_ID},
    errors=(400, 404, 415, 422),
)
async def patch_webhook(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    body: WebhookPatch = await json_body(request, WebhookPatch)
    changes = await webhook_changes(request, body)
    async with tenant_transaction(request) as conn:
        after = await change_webhook(request, conn, webhook_id, changes)
    return web.json_response(text=after.model_dump_json())


async def webhook_changes(request: web.Request, body: WebhookPatch) -> dict[str, Any]:
    """Return the columns and values ``body`` sets, checked for change_webhook: the URL one a
    webhook may call (production mode refuses this machine and private networks), the event
    types sorted without repeats.

    Raises ProblemError 422 for a field set to null or a URL the webhooks may not call (its
    ``errors`` name the field).
    """
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    for field in ("url", "event_types", "active", "description"):
        if field in changes and changes[field] is None:
            raise ProblemError(
                422, f"{field} cannot be null", errors=[{"field": field, "message": "null"}]
            )
    if "url" in changes:
        changes["url"] = await _checked_url(request, changes["url"])
    if "event_types" in changes:
        changes["event_types"] = sorted(set(changes["event_types"]))
    return changes


async def change_webhook(
    request: web.Request, conn: asyncpg.Connection, webhook_id: uuid.UUID, changes: dict[str, Any]
) -> Webhook:
    """Apply ``changes`` (checked columns and values) to the webhook, audit them and return
    it; raise ProblemError(404) for a webhook the tenant does not have."""
    tenant = principal_of(request).tenant_id
    before = await _webhook(conn, tenant, webhook_id)
    if changes:
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
        await conn.execute(
            f"UPDATE webhooks SET {sets}, version = version + 1 WHERE tenant_id = $1 AND id = $2",
            tenant,
            webhook_id,
            *changes.values(),
        )
    after = await _webhook(conn, tenant, webhook_id)
    if changes:
        await record_change(
            request, conn, "update", "webhook", webhook_id, before=before, after=after
        )
    return after


@api.delete(
    "/api/v1/webhooks/{webhook_id}",
    summary="Delete a webhook and its delivery log",
    response=Deleted,
    permission=Permission.NOTIFICATIONS_MANAGE,
    path_params={"webhook_id": WEBHOOK_ID},
    errors=(400, 404),
)
async def delete_webhook(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    async with tenant_transaction(request) as conn:
        await remove_webhook(request, conn, webhook_id)
    return web.json_response(text=Deleted(deleted=True).model_dump_json())


async def remove_webhook(
    request: web.Request, conn: asyncpg.Connection, webhook_id: uuid.UUID
) -> Webhook:
    """Delete the caller's tenant's webhook ``webhook_id`` and its delivery log (audited);
    return what it was.

    Raises ProblemError(404) when the tenant has no such webhook.
    """
    tenant = principal_of(request).tenant_id
    before = await _webhook(conn, tenant, webhook_id)
    await conn.execute("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2", tenant, webhook_id)
    await record_change(request, conn, "delete", "webhook", webhook_id, before=before)
    return before


_DELIVERY = (
    "d.id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at, d.last_status, "
    "d.last_error, d.replay_of, d.created_at, d.delivered_at, d.payload"
)
_NEWEST_FIRST = "-created_at"
_DELIVERY_SORTS = {"created_at": SortKey("created_at", "d.created_at", "timestamptz")}


def _delivery(row: asyncpg.Record) -> Delivery:
    data = dict(row)
    if isinstance(data["payload"], str):
        data["payload"] = json.loads(data["payload"])
    return Delivery.model_validate(data)


@api.get(
    "/api/v1/webhooks/{webhook_id}/deliveries",
    summary="The webhook's delivery log, newest first",
    response=DeliveryPage,
    permission=Permission.NOTIFICATIONS_MANAGE,
    query=DeliveryQuery,
    path_params={"webhook_id": WEBHOOK_ID},
    errors=(400, 404),
)
async def list_deliveries(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    query = query_model(request, DeliveryQuery)
    async with tenant_transaction(request) as conn:
        page = await delivery_page(conn, principal_of(request).tenant_id, webhook_id, query)
    return web.json_response(text=page.model_dump_json())


async def delivery_page(
    conn: asyncpg.Connection, tenant: str, webhook_id: uuid.UUID, query: DeliveryQuery
) -> DeliveryPage:
    """Return the page of the webhook's deliveries that ``query`` asks for, newest first.

    Raises ProblemError(404) when the tenant has no such webhook, 400 for a bad cursor.
    """
    args: list[Any] = [tenant, webhook_id]
    conditions = ["d.tenant_id = $1", "d.webhook_id = $2"]
    if query.status is not None:
        args.append(query.status)
        conditions.append(f"d.status = ${len(args)}")
    after, order = keyset(_DELIVERY_SORTS, _NEWEST_FIRST, query.cursor, "d.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    await _webhook(conn, tenant, webhook_id)
    rows = await conn.fetch(
        f"SELECT {_DELIVERY} FROM webhook_deliveries d WHERE {' AND '.join(conditions)} "
        f"{order} LIMIT ${len(args)}",
        *args,
    )
    shown, cursor = split_page(rows, query.limit, _DELIVERY_SORTS, _NEWEST_FIRST)
    return DeliveryPage(items=[_delivery(r) for r in shown], next_cursor=cursor)


@api.post(
    "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    summary="Send a delivery's payload again, as a new delivery",
    response=Delivery,
    permission=Permission.NOTIFICATIONS_MANAGE,
    path_params={"webhook_id": WEBHOOK_ID, "delivery_id": DELIVERY_ID},
    status=201,
    errors=(400, 404),
)
async def replay_delivery(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    delivery_id = path_uuid(request, "delivery_id")
    async with tenant_transaction(request) as conn:
        created = await replay(request, conn, webhook_id, delivery_id)
    request.app[WEBHOOK_DISPATCHER].wake()
    return web.json_response(text=created.model_dump_json(), status=201)


async def replay(
    request: web.Request, conn: asyncpg.Connection, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> Delivery:
    """Queue the delivery's payload again as a new delivery (audited); return the new one.
    The caller wakes the dispatcher after commit.

    Raises ProblemError(404) when the caller's tenant has no such delivery of that webhook.
    """
    tenant = principal_of(request).tenant_id
    row = await conn.fetchrow(
        """INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_id, event_type,
                                           payload, replay_of)
           SELECT tenant_id, webhook_id, event_id, event_type, payload, id
           FROM webhook_deliveries
           WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3
           RETURNING id""",
        tenant,
        webhook_id,
        delivery_id,
    )
    if row is None:
        raise ProblemError(404, f"no delivery {delivery_id} of webhook {webhook_id}")
    await record_change(
        request, conn, "replay", "webhook_delivery", delivery_id, after={"new": row["id"]}
    )
    created = await conn.fetchrow(
        f"SELECT {_DELIVERY} FROM webhook_deliveries d WHERE d.id = $1", row["id"]
    )
    return _delivery(created)


@api.post(
    "/api/v1/webhooks/{webhook_id}/test",
    summary="Queue a webhook.test delivery to this webhook",
    response=Delivery,
    permission=Permission.NOTIFICATIONS_MANAGE,
    path_params={"webhook_id": WEBHOOK_ID},
    status=201,
    errors=(400, 404),
)
async def test_webhook(request: web.Request) -> web.Response:
    webhook_id = path_uuid(request, "webhook_id")
    async with tenant_transaction(request) as conn:
        delivery = await queue_test(conn, principal_of(request).tenant_id, webhook_id)
    request.app[WEBHOOK_DISPATCHER].wake()
    return web.json_response(text=delivery.model_dump_json(), status=201)


async def queue_test(conn: asyncpg.Connection, tenant: str, webhook_id: uuid.UUID) -> Delivery:
    """Queue a ``webhook.test`` delivery to the webhook; return it. The caller wakes the
    dispatcher after commit.

    Raises ProblemError(404) when the tenant has no such webhook.
    """
    await _webhook(conn, tenant, webhook_id)
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": "webhook.test",
        "tenant": tenant,
        "severity": "info",
        "created_at": datetime.now().astimezone().isoformat(),
        "data": {"webhook_id": str(webhook_id)},
    }
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_deliveries AS d (tenant_id, webhook_id, event_id, event_type,
                                                 payload)
            VALUES ($1, $2, $3, 'webhook.test', $4::text::jsonb) RETURNING {_DELIVERY}""",
        tenant,
        webhook_id,
        event_id,
        json.dumps(payload),
    )
    return _delivery(row)


@api.get(
    "/api/v1/email-rules",
    summary="Which event types are emailed to whom",
    response=EmailRuleList,
    permission=Permission.NOTIFICATIONS_MANAGE,
)
async def list_email_rules(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        page = await email_rule_list(conn, principal_of(request).tenant_id)
    return web.json_response(text=page.model_dump_json())


async def email_rule_list(conn: asyncpg.Connection, tenant: str) -> EmailRuleList:
    """Return the tenant's email rules, oldest first."""
    rows = await conn.fetch(
        "SELECT id, recipients, event_types, min_severity, created_at FROM email_rules "
        "WHERE tenant_id = $1 ORDER BY created_at, id",
        tenant,
    )
    return EmailRuleList(items=[EmailRule.model_validate(dict(r)) for r in rows])


@api.post(
    "/api/v1/email-rules",
    summary="Email these event types (at or above a severity) to these addresses",
    response=EmailRule,
    permission=Permission.NOTIFICATIONS_MANAGE,
    body=EmailRuleCreate,
    status=201,
    errors=(400, 415, 422),
)
async def create_email_rule(request: web.Request) -> web.Response:
    body: EmailRuleCreate = await json_body(request, EmailRuleCreate)
    async with tenant_transaction(request) as conn:
        rule = await add_email_rule(request, conn, body)
    return web.json_response(text=rule.model_dump_json(), status=201)


async def add_email_rule(
    request: web.Request, conn: asyncpg.Connection, body: EmailRuleCreate
) -> EmailRule:
    """Store ``body`` as a new email rule of the caller's tenant (audited); return it."""
    rule_id = uuid.uuid4()
    row = await conn.fetchrow(
        """INSERT INTO email_rules (id, tenant_id, recipients, event_types, min_severity)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, recipients, event_types, min_severity, created_at""",
        rule_id,
        principal_of(request).tenant_id,
        sorted({str(r) for r in body.recipients}),
        sorted(set(body.event_types)),
        body.min_severity,
    )
    rule = EmailRule.model_validate(dict(row))
    await record_change(request, conn, "create", "email_rule", rule_id, after=rule)
    return rule


@api.delete(
    "/api/v1/email-rules/{rule_id}",
    summary="Stop an email rule",
    response=Deleted,
    permission=Permission.NOTIFICATIONS_MANAGE,
    path_params={"rule_id": RULE_ID},
    errors=(400, 404),
)
async def delete_email_rule(request: web.Request) -> web.Response:
    rule_id = path_uuid(request, "rule_id")
    async with tenant_transaction(request) as conn:
        await stop_email_rule(request, conn, rule_id)
    return web.json_response(text=Deleted(deleted=True).model_dump_json())


async def stop_email_rule(
    request: web.Request, conn: asyncpg.Connection, rule_id: uuid.UUID
) -> EmailRule:
    """Delete the caller's tenant's email rule ``rule_id`` (audited); return what it was.

    Raises ProblemError(404) when the tenant has no such rule.
    """
    row = await conn.fetchrow(
        "DELETE FROM email_rules WHERE tenant_id = $1 AND id = $2 "
        "RETURNING id, recipients, event_types, min_severity, created_at",
        principal_of(request).tenant_id,
        rule_id,
    )
    if row is None:
        raise ProblemError(404, f"no email rule {rule_id}")
    rule = EmailRule.model_validate(dict(row))
    await record_change(request, conn, "delete", "email_rule", rule_id, before=rule)
    return rule
