"""Tenant settings (``/portal/settings``): the scoring weights and detection thresholds
(edited in a form), the webhooks with their latest deliveries (add, edit, pause or resume,
delete, test and replay; a new webhook's signing secret is shown once) and the email rules.
For roles that manage notifications; the scoring form needs ``scoring:write``."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.api.scores import RulesDocument, replace_rules, stored_rules
from fleetlink.cloud.api.webhooks import (
    EVENT_TYPES,
    Delivery,
    DeliveryQuery,
    EmailRuleCreate,
    EmailRuleList,
    Webhook,
    WebhookCreate,
    WebhookPatch,
    add_email_rule,
    add_webhook,
    change_webhook,
    delivery_page,
    email_rule_list,
    queue_test,
    remove_webhook,
    replay,
    stop_email_rule,
    webhook_changes,
    webhook_list,
)
from fleetlink.cloud.app_keys import WEBHOOK_DISPATCHER
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_errors import field_errors
from fleetlink.cloud.portal.form_page import page_after_form, posted_fields
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.render import render_error
from fleetlink.cloud.scoring.rules import DetectionRules, ScoringRules

RECENT_DELIVERIES = 5
PATH = "/portal/settings"


class WebhookWithDeliveries(BaseModel):
    webhook: Webhook
    deliveries: list[Delivery]


class SettingsPage(BaseModel):
    scoring: RulesDocument
    may_edit_scoring: bool
    webhooks: list[WebhookWithDeliveries]
    email_rules: EmailRuleList
    event_types: list[str]


async def load(request: web.Request, conn: asyncpg.Connection) -> SettingsPage:
    """Return the tenant's scoring rules, webhooks with their latest deliveries and email
    rules."""
    principal = principal_of(request)
    tenant = principal.tenant_id
    hooks = []
    for hook in (await webhook_list(conn, tenant)).items:
        deliveries = await delivery_page(
            conn, tenant, hook.id, DeliveryQuery(limit=RECENT_DELIVERIES)
        )
        hooks.append(WebhookWithDeliveries(webhook=hook, deliveries=deliveries.items))
    return SettingsPage(
        scoring=await stored_rules(conn, tenant),
        may_edit_scoring=principal.can(Permission.SCORING_WRITE),
        webhooks=hooks,
        email_rules=await email_rule_list(conn, tenant),
        event_types=["*", *EVENT_TYPES],
    )


page = Page(
    name="settings",
    path=PATH,
    title="Settings",
    permission=Permission.NOTIFICATIONS_MANAGE,
    load=load,
    nav="Settings",
)


def scoring_from_form(current: ScoringRules, form: dict[str, str]) -> ScoringRules:
    """Return ``current`` with the detection thresholds (``detection.<name>``) and event
    weights (``rules.<index>.points``, ``rules.<index>.points_per_minute``) the form sets.

    Raises ScoringFormError with ``{field name: message}`` for fields that are not numbers or
    that the rules refuse.
    """
    data = current.model_dump(mode="json")
    errors: dict[str, str] = {}
    names = [f"detection.{n}" for n in DetectionRules.model_fields]
    names += [f"rules.{i}.{w}" for i in range(len(current.rules)) for w in _WEIGHTS]
    for name in names:
        raw = form.get(name, "").strip()
        if not raw:
            errors[name] = "Enter a number."
            continue
        try:
            value = float(raw)
        except ValueError:
            errors[name] = f"{raw!r} is not a number."
            continue
        target: Any = data
        *path, last = name.split(".")
        for part in path:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    if errors:
        raise ScoringFormError(errors)
    try:
        return ScoringRules.model_validate(data)
    except ValidationError as exc:
        found: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            name = ".".join(str(p) for p in error["loc"]) or "form"
            found.setdefault(name if name in names else "form", error["msg"])
        raise ScoringFormError(found) from None


_WEIGHTS = ("points", "points_per_minute")


class ScoringFormError(ValueError):
    """The scoring form's fields that do not fit, as ``{field name: message}``."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


async def save_scoring(request: web.Request) -> web.StreamResponse:
    """Store the scoring form's thresholds and weights; show the page with a notice, or the
    errors next to their fields (422)."""
    form = await posted_fields(request)
    async with tenant_transaction(request) as conn:
        current = await stored_rules(conn, principal_of(request).tenant_id)
        try:
            rules = scoring_from_form(current.rules, form)
        except ScoringFormError as refused:
            return await page_after_form(request, conn, page, 422, errors=refused.errors, form=form)
        saved = await replace_rules(request, conn, rules)
        notice = (
            f"Scoring rules saved as version {saved.version}; "
            f"{saved.days_marked} days of trips are being rescored."
        )
        return await page_after_form(request, conn, page, notice=notice)


async def create_webhook(request: web.Request) -> web.StreamResponse:
    """Add the form's webhook (URL, description, event types); show the page with its signing
    secret, shown this once (201), or the errors next to their fields (422, 409)."""
    fields = await _webhook_fields(request)
    # The email rule form has fields of the same names: this form's are kept apart.
    form_values = {f"webhook_{k}": v for k, v in fields.items()}
    async with tenant_transaction(request) as conn:
        try:
            body = WebhookCreate.model_validate(fields)
        except ValidationError as exc:
            errors = {f"webhook_{k}": v for k, v in field_errors(exc).items()}
            return await page_after_form(request, conn, page, 422, errors=errors, form=form_values)
        try:
            created = await add_webhook(request, conn, body)
        except ProblemError as refused:
            field = "webhook_url" if refused.status == 422 else "webhook_form"
            errors = {field: _sentence(refused.detail)}
            status = refused.status if refused.status in (409, 422) else 422
            return await page_after_form(
                request, conn, page, status, errors=errors, form=form_values
            )
        return await page_after_form(request, conn, page, 201, created=created)


async def _webhook_fields(request: web.Request) -> dict[str, Any]:
    """Return a webhook form's URL, description and event types as posted."""
    posted = await request.post()
    form = await posted_fields(request)
    return {
        "url": form.get("url", "").strip(),
        "description": form.get("description", "").strip(),
        "event_types": [t for t in posted.getall("event_types", []) if isinstance(t, str)],
    }


def _sentence(detail: str) -> str:
    return detail[:1].upper() + detail[1:] + "."


async def edit_webhook(request: web.Request) -> web.StreamResponse:
    """Change the webhook of the path to the form's URL, description and event types, as the
    API's PATCH does; show the page with a notice, or its edit form open with the errors next
    to their fields (422)."""
    fields = await _webhook_fields(request)
    # The page has one edit form per webhook: these values go back to this one's.
    form_values = {f"edit_{k}": v for k, v in fields.items()}
    try:
        webhook_id = path_uuid(request, "webhook_id")
        async with tenant_transaction(request) as conn:
            # With no changes this only reads it: another tenant's webhook is a 404 first.
            before = await change_webhook(request, conn, webhook_id, {})
            try:
                changes = await webhook_changes(request, WebhookPatch.model_validate(fields))
            except ValidationError as exc:
                errors = {f"edit_{k}": v for k, v in field_errors(exc).items()}
            except ProblemError as refused:
                errors = {"edit_url": _sentence(refused.detail)}
            else:
                changes = {k: v for k, v in changes.items() if getattr(before, k) != v}
                after = await change_webhook(request, conn, webhook_id, changes)
                notice = f"The webhook to {after.url} is {'changed' if changes else 'unchanged'}."
                return await page_after_form(request, conn, page, notice=notice)
            return await page_after_form(
                request, conn, page, 422, errors=errors, form=form_values, editing=webhook_id
            )
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)


async def delete_webhook(request: web.Request) -> web.StreamResponse:
    """Delete the webhook of the path and its delivery log; show the page with a notice."""
    try:
        webhook_id = path_uuid(request, "webhook_id")
        async with tenant_transaction(request) as conn:
            gone = await remove_webhook(request, conn, webhook_id)
            notice = f"The webhook to {gone.url} is deleted."
            return await page_after_form(request, conn, page, notice=notice)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)


async def pause_webhook(request: web.Request) -> web.StreamResponse:
    """Pause the webhook of the path (its deliveries wait) or, with ``active=1`` in the form,
    resume it; show the page with a notice."""
    resume = (await posted_fields(request)).get("active") == "1"
    try:
        webhook_id = path_uuid(request, "webhook_id")
        async with tenant_transaction(request) as conn:
            hook = await change_webhook(request, conn, webhook_id, {"active": resume})
            notice = f"The webhook to {hook.url} is {'active' if resume else 'paused'}."
            response = await page_after_form(request, conn, page, notice=notice)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)
    if resume:
        request.app[WEBHOOK_DISPATCHER].wake()
    return response


async def test_webhook(request: web.Request) -> web.StreamResponse:
    """Queue a test delivery to the webhook of the path; show the page with a notice."""
    try:
        webhook_id: uuid.UUID = path_uuid(request, "webhook_id")
        async with tenant_transaction(request) as conn:
            await queue_test(conn, principal_of(request).tenant_id, webhook_id)
            response = await page_after_form(
                request, conn, page, notice="A test delivery is queued."
            )
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)
    request.app[WEBHOOK_DISPATCHER].wake()
    return response


async def replay_delivery(request: web.Request) -> web.StreamResponse:
    """Queue the delivery of the path again; show the page with a notice."""
    try:
        webhook_id = path_uuid(request, "webhook_id")
        delivery_id = path_uuid(request, "delivery_id")
        async with tenant_transaction(request) as conn:
            await replay(request, conn, webhook_id, delivery_id)
            response = await page_after_form(
                request, conn, page, notice="The delivery is queued again."
            )
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)
    request.app[WEBHOOK_DISPATCHER].wake()
    return response


async def create_email_rule(request: web.Request) -> web.StreamResponse:
    """Add the form's email rule (recipients separated by commas, spaces or lines); show the
    page with a notice, or the errors next to their fields (422)."""
    posted = await request.post()
    form = await posted_fields(request)
    fields = {
        "recipients": [r for r in re.split(r"[,\s]+", form.get("recipients", "")) if r],
        "event_types": [t for t in posted.getall("event_types", []) if isinstance(t, str)],
        "min_severity": form.get("min_severity", "warning"),
    }
    async with tenant_transaction(request) as conn:
        try:
            body = EmailRuleCreate.model_validate(fields)
        except ValidationError as exc:
            form_values = {**form, "event_types": fields["event_types"]}
            errors = field_errors(exc)
            return await page_after_form(request, conn, page, 422, errors=errors, form=form_values)
        await add_email_rule(request, conn, body)
        return await page_after_form(request, conn, page, notice="The email rule is added.")


async def delete_email_rule(request: web.Request) -> web.StreamResponse:
    """Stop the email rule of the path; show the page with a notice."""
    try:
        rule_id = path_uuid(request, "rule_id")
        async with tenant_transaction(request) as conn:
            await stop_email_rule(request, conn, rule_id)
            return await page_after_form(request, conn, page, notice="The email rule is stopped.")
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)


routes = web.RouteTableDef()
routes.post(f"{PATH}/email-rules")(portal_guard(create_email_rule, Permission.NOTIFICATIONS_MANAGE))
routes.post(PATH + "/email-rules/{rule_id}/stop")(
    portal_guard(delete_email_rule, Permission.NOTIFICATIONS_MANAGE)
)
routes.post(f"{PATH}/scoring")(portal_guard(save_scoring, Permission.SCORING_WRITE))
routes.post(f"{PATH}/webhooks")(portal_guard(create_webhook, Permission.NOTIFICATIONS_MANAGE))
routes.post(PATH + "/webhooks/{webhook_id}/edit")(
    portal_guard(edit_webhook, Permission.NOTIFICATIONS_MANAGE)
)
routes.post(PATH + "/webhooks/{webhook_id}/delete")(
    portal_guard(delete_webhook, Permission.NOTIFICATIONS_MANAGE)
)
routes.post(PATH + "/webhooks/{webhook_id}/active")(
    portal_guard(pause_webhook, Permission.NOTIFICATIONS_MANAGE)
)
routes.post(PATH + "/webhooks/{webhook_id}/test")(
    portal_guard(test_webhook, Permission.NOTIFICATIONS_MANAGE)
)
routes.post(PATH + "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay")(
    portal_guard(replay_delivery, Permission.NOTIFICATIONS_MANAGE)
)
