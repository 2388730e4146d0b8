"""The dead-letter store: capped in rows and bytes with a retention time, and replayable.

Dead letters are messages the ingest could not store: undecodable or invalid payloads (kept
verbatim, or their first bytes when oversized) and *quarantined* batches (valid, but with
times outside the accepted window). ``prune`` keeps the store within its caps, dropping
replayed letters first, then the oldest plain dead letters, quarantined batches last;
``replay`` re-ingests the letters the current rules accept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.ingest.inbound import (
    Delivery,
    EventsIn,
    IngestRules,
    StatusIn,
    TelemetryIn,
    classify,
)
from fleetlink.cloud.ingest.store import ChunkStore
from fleetlink.shared.codec import CodecError, decode, encode
from fleetlink.shared.messages import EventBatch, TelemetryBatch
from fleetlink.shared.topics import Kind, TopicError, parse

M = TypeVar("M", bound=BaseModel)

# Which letters go first when the store is over a cap: replayed, then plain, then quarantined;
# within each, the oldest.
_KEEP_ORDER = "(replayed_at IS NULL) DESC, quarantined DESC, id DESC"


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    max_rows: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    retention: timedelta = timedelta(days=14)


async def prune(conn: asyncpg.Connection, limits: DeadLetterLimits) -> int:
    """Delete the letters beyond ``limits``; return how many were deleted (also counted in
    ``ingest_counters`` as ``dead_letters_dropped``)."""
    async with conn.transaction():
        expired = await conn.fetchval(
            "WITH d AS (DELETE FROM dead_letters WHERE received_at < now() - $1::interval "
            "RETURNING 1) SELECT count(*) FROM d",
            limits.retention,
        )
        over_rows = await conn.fetchval(
            f"""WITH d AS (DELETE FROM dead_letters WHERE id IN (
                    SELECT id FROM dead_letters ORDER BY {_KEEP_ORDER} OFFSET $1)
                RETURNING 1) SELECT count(*) FROM d""",
            limits.max_rows,
        )
        over_bytes = await conn.fetchval(
            f"""WITH d AS (DELETE FROM dead_letters WHERE id IN (
                    SELECT id FROM (SELECT id, sum(size) OVER (ORDER BY {_KEEP_ORDER}) AS total
                                    FROM dead_letters) AS t
                    WHERE total > $1)
                RETURNING 1) SELECT count(*) FROM d""",
            limits.max_bytes,
        )
        dropped = int(expired + over_rows + over_bytes)
        if dropped:
            await conn.execute(
                "INSERT INTO ingest_counters (name, count) VALUES ('dead_letters_dropped', $1) "
                "ON CONFLICT (name) DO UPDATE SET count = ingest_counters.count + $1",
                dropped,
            )
    return dropped


def shift_times(topic_name: str, payload: bytes, shift_ms: int) -> bytes:
    """Return a telemetry or event batch with every time moved by ``shift_ms`` (a device
    clock that ran ahead by N ms is corrected with ``-N``); other payloads unchanged.

    Raises CodecError if the payload does not decode or the shifted times leave the contract.
    """
    try:
        kind = parse(topic_name).kind
    except TopicError:
        return payload
    if kind is Kind.TELEMETRY:
        batch = decode(payload, TelemetryBatch)
        data = batch.model_dump() | {"base_time_ms": batch.base_time_ms + shift_ms}
        return encode(_validated(TelemetryBatch, data))
    if kind is Kind.EVENTS:
        events = decode(payload, EventBatch)
        data = events.model_dump()
        for event in data["events"]:
            event["time_ms"] += shift_ms
        return encode(_validated(EventBatch, data))
    return payload


def _validated(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CodecError(f"shifted times are not valid: {exc}") from None


async def replay(
    conn: asyncpg.Connection,
    rules: IngestRules,
    *,
    ids: list[int] | None = None,
    limit: int = 1000,
    shift_ms: int = 0,
    max_seq_jump: int | None = None,
) -> Counter[str]:
    """Re-ingest dead letters (all not yet replayed, or those in ``ids``) that the current
    rules accept; ``shift_ms`` moves the times of quarantined batches first.

    Each accepted letter is stored and marked replayed in one transaction; the others stay.
    Returns counts: ``replayed``, ``still_refused``, ``refused`` (e.g. unknown device).
    """
    store = ChunkStore() if max_seq_jump is None else ChunkStore(max_seq_jump)
    rows = await conn.fetch(
        "SELECT id, received_at, topic, payload, quarantined FROM dead_letters "
        "WHERE replayed_at IS NULL AND ($1::bigint[] IS NULL OR id = ANY($1)) "
        "ORDER BY id LIMIT $2",
        ids,
        limit,
    )
    outcome: Counter[str] = Counter()
    for row in rows:
        payload = bytes(row["payload"])
        if shift_ms and row["quarantined"]:
            try:
                payload = shift_times(row["topic"], payload, shift_ms)
            except CodecError:
                outcome["still_refused"] += 1
                continue
        item = classify(Delivery(row["topic"], payload, 0, 0, row["received_at"]), rules=rules)
        if not isinstance(item, TelemetryIn | EventsIn | StatusIn):
            outcome["still_refused"] += 1
            continue
        async with conn.transaction():
            result = await store.write(conn, [item])
            if result.refused:
                outcome["refused"] += 1
                continue
            await conn.execute(
                "UPDATE dead_letters SET replayed_at = now() WHERE id = $1", row["id"]
            )
            await conn.execute(
                "INSERT INTO ingest_counters (name, count) VALUES ('dead_letters_replayed', 1) "
                "ON CONFLICT (name) DO UPDATE SET count = ingest_counters.count + 1"
            )
        outcome["replayed"] += 1
    return outcome
