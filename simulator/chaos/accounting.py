"""What a chaos run counts: samples each device committed to its outbox, what the cloud holds,
and what the device reported as given up. ``lost`` and ``duplicated`` must come out 0."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from fleetlink.shared.codec import CodecError, decode
from fleetlink.shared.messages import TelemetryBatch
from fleetlink.shared.signing import payload_digest


@dataclass(slots=True)
class OutboxLedger:
    """What one device's outbox files said, over every file it had (a re-install starts one)."""

    samples_added: int = 0
    dropped_seqs: list[int] = field(default_factory=list)
    # Batches a re-install discarded unsent: (seq, digest, samples).
    discarded: list[tuple[int, str, int]] = field(default_factory=list)
    # Telemetry batches still in the outbox after the final drain: (seq, digest, samples).
    left: list[tuple[int, str, int]] = field(default_factory=list)

    def read(self, path: Path, wiped: bool) -> None:
        """Add what the outbox file at ``path`` holds (``wiped``: it is about to be deleted)."""
        if not path.exists():
            return
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            self.samples_added += int(meta.get("samples_added", 0))
            self.dropped_seqs += [
                int(s) for (s,) in db.execute("SELECT seq FROM drops WHERE kind = 'telemetry'")
            ]
            for seq, payload in db.execute(
                "SELECT seq, payload FROM batches WHERE kind = 'telemetry'"
            ):
                batch = (int(seq), payload_digest(bytes(payload)), _samples(bytes(payload)))
                (self.discarded if wiped else self.left).append(batch)
        finally:
            db.close()


def backlog(path: Path) -> tuple[int, int]:
    """Return (batches, payload bytes) the outbox at ``path`` holds now; (0, 0) if absent."""
    if not path.exists():
        return 0, 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            (count,) = db.execute("SELECT count(*) FROM batches").fetchone()
            row = db.execute("SELECT value FROM meta WHERE key = 'stored_bytes'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0, 0
    return int(count), int(row[0]) if row else 0


def _samples(payload: bytes) -> int:
    try:
        return decode(payload, TelemetryBatch).sample_count
    except CodecError:
        return 0


@dataclass(slots=True)
class Tally:
    produced: int = 0
    stored: int = 0
    stored_rows: int = 0
    quarantined: int = 0
    cap_gap_samples: int = 0
    cap_gaps: int = 0
    memory_gap_samples: int = 0
    discarded_by_reinstall: int = 0
    left_in_outboxes: int = 0
    duplicate_deliveries_absorbed: int = 0

    @property
    def duplicated(self) -> int:
        return self.stored_rows - self.stored

    @property
    def lost(self) -> int:
        return (
            self.produced
            - self.stored
            - self.quarantined
            - self.cap_gap_samples
            - self.discarded_by_reinstall
            - self.left_in_outboxes
        )


async def tally(conn: asyncpg.Connection, tenant: str, ledgers: dict[str, OutboxLedger]) -> Tally:
    """Count what the cloud holds for ``tenant`` against what the devices' outboxes said."""
    t = Tally()
    t.produced = sum(ledger.samples_added for ledger in ledgers.values())
    row = await conn.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT (device_id, signal_id, value)) AS d "
        "FROM samples WHERE tenant_id = $1",
        tenant,
    )
    t.stored_rows, t.stored = row["n"], row["d"]
    for r in await conn.fetch(
        "SELECT payload FROM dead_letters WHERE quarantined AND device_id = ANY($1::text[])",
        list(ledgers),
    ):
        t.quarantined += _samples(bytes(r["payload"]))
    for r in await conn.fetch(
        "SELECT reason, count(*) AS n, coalesce(sum(samples), 0) AS s FROM gaps "
        "WHERE tenant_id = $1 GROUP BY reason",
        tenant,
    ):
        if r["reason"] == "outbox_cap":
            t.cap_gaps, t.cap_gap_samples = r["n"], r["s"]
        else:
            t.memory_gap_samples += r["s"]
    for device, ledger in ledgers.items():
        # A batch dropped at the cap after the cloud had stored it (its ack still on the way)
        # is counted in the gap and stored: count it once.
        t.cap_gap_samples -= await conn.fetchval(
            "SELECT coalesce(sum(sample_count), 0) FROM ingested_batches "
            "WHERE device_id = $1 AND kind = 'telemetry' AND seq = ANY($2::bigint[])",
            device,
            ledger.dropped_seqs,
        )
        # A batch the cloud holds is counted as stored (or quarantined), not as discarded or
        # left: one whose ack did not reach the device before it stopped stays in its outbox.
        held = {
            (r["seq"], r["digest"])
            for r in await conn.fetch(
                "SELECT seq, digest FROM ingested_batches WHERE device_id = $1 "
                "AND seq = ANY($2::bigint[]) UNION ALL SELECT seq, digest FROM dead_letters "
                "WHERE quarantined AND device_id = $1 AND seq = ANY($2::bigint[])",
                device,
                [seq for seq, _, _ in ledger.discarded + ledger.left],
            )
        }
        t.discarded_by_reinstall += sum(
            samples for seq, digest, samples in ledger.discarded if (seq, digest) not in held
        )
        t.left_in_outboxes += sum(
            samples for seq, digest, samples in ledger.left if (seq, digest) not in held
        )
    t.duplicate_deliveries_absorbed = (
        await conn.fetchval("SELECT count FROM ingest_counters WHERE name = 'duplicates'") or 0
    )
    return t
