"""The SQLite outbox: every batch is stored with its ``seq`` before it is published.

The database runs in WAL mode with ``synchronous=FULL``: each commit fsyncs the WAL, so a
committed batch and the advanced ``next_seq`` survive power loss, not only ``kill -9``.
``NORMAL`` would survive ``kill -9`` too, but a power cut could roll back the last commits
after their batches were already published, and the device would then reuse those seqs.
One fsync per batch (about one a second) is cheap.

Local state cannot silently reset: an empty (0-byte) or corrupt file is moved aside with one
log line and a new outbox starts *unconfirmed*: the uplink asks the cloud for the device's
high-water mark ("hello") before it publishes, and batches stored meanwhile are renumbered
above that mark (``adopt_high_water``), so no seq is ever reused.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleetlink.edge.gaps import Gap
from fleetlink.shared.messages import MAX_SEQ
from fleetlink.shared.signing import payload_digest

log = logging.getLogger(__name__)

BatchKind = Literal["telemetry", "events"]
KINDS: tuple[BatchKind, ...] = ("telemetry", "events")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('telemetry', 'events')),
    payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_kind_seq ON batches (kind, seq);
CREATE TABLE IF NOT EXISTS drops (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    dropped_ms INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1);
INSERT OR IGNORE INTO meta (key, value) VALUES ('confirmed', 0);
INSERT OR IGNORE INTO meta (key, value)
    SELECT 'stored_bytes', coalesce(sum(length(payload)), 0) FROM batches;
CREATE TRIGGER IF NOT EXISTS batches_bytes_in AFTER INSERT ON batches BEGIN
    UPDATE meta SET value = value + length(NEW.payload) WHERE key = 'stored_bytes';
END;
CREATE TRIGGER IF NOT EXISTS batches_bytes_out AFTER DELETE ON batches BEGIN
    UPDATE meta SET value = value - length(OLD.payload) WHERE key = 'stored_bytes';
END;
CREATE TRIGGER IF NOT EXISTS batches_bytes_change AFTER UPDATE OF payload ON batches BEGIN
    UPDATE meta SET value = value - length(OLD.payload) + length(NEW.payload)
    WHERE key = 'stored_bytes';
END;
"""
# The default cap on the payload bytes the outbox holds (docs/decisions.md D33).
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# At the cap, batches are dropped until the outbox holds this share of it.
CAP_LOW_WATER = 0.9
# When fewer seqs than this are left, the agent says so and asks the cloud for help.
SEQ_RESERVE = 1_000_000
# Rebuilds a stored payload under a new seq: (kind, payload, new_seq) -> payload.
Rebuild = Callable[[str, bytes, int], bytes]


class OutboxError(RuntimeError):
    """Raised when the outbox database cannot be opened or written."""


class SeqSpaceExhausted(OutboxError):
    """Raised when no seq is left below the contract's maximum (ask the cloud: hello)."""


def _move_aside(path: Path, why: str) -> Path:
    """Rename the outbox file (and its WAL and shared-memory files) out of the way."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    return target


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch waiting for its ack: its seq, kind and encoded payload."""

    seq: int
    kind: BatchKind
    payload: bytes


class Outbox:
    """A durable queue of encoded batches keyed by the device's ``seq``, capped in bytes.

    Thread-safe: one connection guarded by a lock, shared by the agent and the uplink.
    """

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """Open (or create) the outbox at ``path``; it holds at most ``max_bytes`` of payload.

        Raises:
            OutboxError: the file cannot be opened as an SQLite database.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # Why this outbox started afresh ("empty", "corrupt"), or None.
        self.reset_reason: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size == 0:
                self._reset("empty", "the file is empty (0 bytes)")
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as exc:
                self._reset("corrupt", str(exc))
                self._db = self._open()
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check}")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _reset(self, why: str, detail: str) -> None:
        moved = _move_aside(self.path, why)
        self.reset_reason = why
        log.error(
            "outbox %s is %s (%s); moved it to %s and starting a new one that asks the cloud "
            "for this device's high-water mark before publishing",
            self.path,
            why,
            detail,
            moved,
        )

    def close(self) -> None:
        """Close the database; the outbox cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, key: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
            (key, by),
        )

    def add(self, kind: BatchKind, build_payload: Callable[[int], bytes], samples: int = 0) -> int:
        """Store a new batch of ``samples`` samples and return its seq.

        ``build_payload(seq)`` is called inside the transaction with the seq the batch gets;
        the advanced seq and the batch commit together or not at all. Beyond ``max_bytes``
        the oldest telemetry batches are dropped first, events only when no telemetry is
        left, and what was dropped is stored as one gap event (``fleetlink.edge.gaps``).

        Raises:
            ValueError: ``kind`` is not a batch kind.
            OutboxError: the database cannot be written (nothing was stored).
            Exception: whatever ``build_payload`` raises (nothing was stored).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown batch kind {kind!r}")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    seq = self._meta("next_seq")
                    if seq > MAX_SEQ:
                        raise SeqSpaceExhausted(
                            f"{self.path}: no seq left (next would be {seq}); the cloud's "
                            "hello answer lets the device continue"
                        )
                    payload = build_payload(seq)
                    now_ms = int(time.time() * 1000)
                    self._db.execute(
                        "INSERT INTO batches (seq, kind, payload, created_ms) VALUES (?, ?, ?, ?)",
                        (seq, kind, payload, now_ms),
                    )
                    self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
                    self._bump("samples_added", samples)
                    self._enforce_cap(now_ms)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: cannot store a {kind} batch: {exc}") from exc
            return seq

    def _enforce_cap(self, now_ms: int) -> None:
        stored = self._meta("stored_bytes")
        if stored <= self.max_bytes:
            return
        # Down to CAP_LOW_WATER of the cap at once: one gap record per ~10 % of the cap, not
        # one per batch while the device stays offline.
        excess = stored - int(self.max_bytes * CAP_LOW_WATER)
        gap = Gap("outbox_cap")
        for kind in KINDS:
            rows = self._db.execute(
                "SELECT seq, payload FROM batches WHERE kind = ? ORDER BY seq", (kind,)
            )
            victims: list[int] = []
            for seq, payload in rows:
                if excess <= 0:
                    break
                victims.append(int(seq))
                excess -= len(payload)
                gap.add_payload(kind, bytes(payload))
            rows.close()
            self._db.executemany("DELETE FROM batches WHERE seq = ?", [(s,) for s in victims])
            self._db.executemany(
                "INSERT INTO drops (seq, kind, dropped_ms) VALUES (?, ?, ?)",
                [(seq, kind, now_ms) for seq in victims],
            )
            self._bump(f"dropped_{kind}", len(victims))
        if gap and gap.device_id:
            self._store_gap(gap, now_ms)

    def _store_gap(self, gap: Gap, now_ms: int) -> None:
        seq = self._meta("next_seq")
        if seq > MAX_SEQ:
            return  # no seq left for it; the drop counters still say what was lost
        self._db.execute(
            "INSERT INTO batches (seq, kind, payload, created_ms) VALUES (?, 'events', ?, ?)",
            (seq, gap.to_batch(seq), now_ms),
        )
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
        self._bump("gaps", 1)
        log.warning(
            "outbox %s is at its cap of %d bytes: dropped %d batches (%d samples, %d events); "
            "a gap record goes to the cloud",
            self.path,
            self.max_bytes,
            gap.batches,
            gap.samples,
            gap.events,
        )

    def add_gap(self, gap: Gap) -> int | None:
        """Store ``gap`` (given up before it reached the outbox) as an event batch; return
        its seq, or None if the gap is empty.

        Raises:
            OutboxError: the database cannot be written.
        """
        if not gap or not gap.device_id:
            return None
        return self.add("events", gap.to_batch)

    def pending(self, limit: int | None = None) -> list[StoredBatch]:
        """Return up to ``limit`` unacked batches: events first, then telemetry, each by seq."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, payload FROM batches ORDER BY kind = 'telemetry', seq LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [StoredBatch(int(seq), kind, bytes(payload)) for seq, kind, payload in rows]

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete exactly the batches with these seqs; return how many were deleted.

        Seqs not in the outbox (already acked, or dropped at the cap) are ignored.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.executemany(
                    "DELETE FROM batches WHERE seq = ?", [(int(s),) for s in set(seqs)]
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return max(cursor.rowcount, 0)

    def digests(self, seqs: Iterable[int]) -> dict[int, str]:
        """Return the payload digest of each of these seqs still in the outbox."""
        wanted = sorted({int(s) for s in seqs})
        with self._lock:
            rows = self._db.execute(
                f"SELECT seq, payload FROM batches WHERE seq IN ({','.join('?' * len(wanted))})",
                wanted,
            ).fetchall()
        return {int(seq): payload_digest(bytes(payload)) for seq, payload in rows}

    @property
    def confirmed(self) -> bool:
        """Return True once the cloud's high-water mark was adopted (hello answered)."""
        with self._lock:
            return self._meta("confirmed") == 1

    @property
    def seq_space_low(self) -> bool:
        """Return True when fewer than SEQ_RESERVE seqs are left."""
        return self.next_seq > MAX_SEQ - SEQ_RESERVE

    def _renumber(self, seqs: list[int], rebuild: Rebuild) -> int:
        next_seq = self._meta("next_seq")
        for old in seqs:
            kind, payload = self._db.execute(
                "SELECT kind, payload FROM batches WHERE seq = ?", (old,)
            ).fetchone()
            if next_seq > MAX_SEQ:
                raise SeqSpaceExhausted(f"{self.path}: no seq left to renumber batch {old}")
            self._db.execute(
                "UPDATE batches SET seq = ?, payload = ? WHERE seq = ?",
                (next_seq, rebuild(kind, bytes(payload), next_seq), old),
            )
            next_seq += 1
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (next_seq,))
        return next_seq

    def _transaction(self, work: Callable[[], int]) -> int:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = work()
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: cannot renumber batches: {exc}") from exc
            return result

    def renumber(self, seqs: Iterable[int], rebuild: Rebuild) -> int:
        """Give these batches new seqs (the next ones), rebuilding their payloads with
        ``rebuild``; return how many were renumbered. Used when the cloud holds other bytes
        under a seq (an ack whose digest is not this batch's)."""
        todo = sorted(set(seqs))

        def work() -> int:
            present = [
                s
                for s in todo
                if self._db.execute("SELECT 1 FROM batches WHERE seq = ?", (s,)).fetchone()
            ]
            self._db.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'next_seq'",
                (max(todo, default=0) + 1,),
            )
            self._renumber(present, rebuild)
            return len(present)

        return self._transaction(work)

    def adopt_high_water(self, high_water: int, rebuild: Rebuild) -> int:
        """Take the cloud's high-water mark (its answer to hello): the next seq goes above it;
        in a new (unconfirmed) outbox, batches stored under seqs at or below it are renumbered;
        the outbox is confirmed.

        When the seq space is nearly used up and the cloud holds nothing at or above the
        local seqs, the next seq comes down to just above everything either side ever used
        (the cloud's mark, the outbox's batches and its dropped seqs): those seqs were never
        stored by the cloud, so none is reused. Returns how many batches were renumbered.
        """

        def work() -> int:
            next_seq = self._meta("next_seq")
            if next_seq > MAX_SEQ - SEQ_RESERVE and high_water < next_seq:
                (used,) = self._db.execute(
                    "SELECT max(coalesce((SELECT max(seq) FROM batches), 0), "
                    "coalesce((SELECT max(seq) FROM drops), 0))"
                ).fetchone()
                lowered = max(high_water, int(used)) + 1
                if lowered < next_seq:
                    log.warning(
                        "seq space nearly used up (next seq %d); the cloud's mark is %d, "
                        "so continuing from %d",
                        next_seq,
                        high_water,
                        lowered,
                    )
                    self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (lowered,))
            # Only a new outbox's batches are certainly not the cloud's: they were never
            # published. A confirmed outbox's batch at or below the mark may be held by the
            # cloud already (its ack lost with the link): renumbering it would store it twice.
            # It is sent under its seq, and the ack's digest says whether it is this batch.
            stale = (
                []
                if self._meta("confirmed") == 1
                else [
                    int(s)
                    for (s,) in self._db.execute(
                        "SELECT seq FROM batches WHERE seq <= ? ORDER BY seq", (high_water,)
                    ).fetchall()
                ]
            )
            self._db.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'next_seq'",
                (high_water + 1,),
            )
            self._renumber(stale, rebuild)
            self._db.execute("UPDATE meta SET value = 1 WHERE key = 'confirmed'")
            return len(stale)

        return self._transaction(work)

    def raise_next_seq(self, high_water: int) -> int:
        """Make the next seq at least ``high_water + 1`` (the cloud's mark); return the next seq."""
        with self._lock:
            self._db.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'next_seq'", (high_water + 1,)
            )
            return self._meta("next_seq")

    @property
    def next_seq(self) -> int:
        """Return the seq the next added batch will get."""
        with self._lock:
            return self._meta("next_seq")

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM batches").fetchone()
        return int(count)

    @property
    def stored_bytes(self) -> int:
        """Return the payload bytes the outbox holds now."""
        with self._lock:
            return self._meta("stored_bytes")

    @property
    def samples_added(self) -> int:
        """Return how many samples were ever stored in this outbox file."""
        with self._lock:
            return self._meta("samples_added")

    def drop_counts(self) -> dict[BatchKind, int]:
        """Return how many batches of each kind were ever dropped at the cap."""
        with self._lock:
            return {kind: self._meta(f"dropped_{kind}") for kind in KINDS}

    def dropped_seqs(self) -> list[tuple[int, BatchKind]]:
        """Return (seq, kind) of every batch dropped at the cap, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, kind FROM drops ORDER BY seq").fetchall()
        return [(int(seq), kind) for seq, kind in rows]
