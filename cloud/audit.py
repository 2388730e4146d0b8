"""The audit log: who changed what, when, with the record before and after.

The table is append-only for the API's role (INSERT and SELECT only, no UPDATE or DELETE
granted), so a compromised API cannot rewrite history. Write the entry in the same
transaction as the change it describes.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def record(
    conn: asyncpg.Connection,
    tenant_id: str,
    actor: str,
    action: str,
    resource: str,
    resource_id: object | None = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    remote: str | None = None,
) -> None:
    """Append one entry; ``before``/``after`` are JSON-serialisable snapshots (or None)."""
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, resource, resource_id, before, after, "
        "remote) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8)",
        tenant_id,
        actor,
        action,
        resource,
        None if resource_id is None else str(resource_id),
        None if before is None else json.dumps(before, default=str),
        None if after is None else json.dumps(after, default=str),
        remote,
    )
