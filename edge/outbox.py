"""The SQLite outbox: every batch is stored with its ``seq`` before it is published.

The database runs in WAL mode with ``synchronous=FULL``: each commit fsyncs the WAL, so a
committed batch and the advanced ``next_seq`` survive power loss, not only ``kill -9``.
``NORMAL`` would survive ``kill -9`` too, but a power cut could roll back the last commits
after their batches were already published, and the device would then reuse those seqs.
One fsync per batch (about one a second) is cheap.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
"""


class OutboxError(RuntimeError):
    """Raised when the outbox database cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch waiting for its ack: its seq, kind and encoded payload."""

    seq: int
    kind: BatchKind
    payload: bytes


class Outbox:
    """A durable, capped queue of encoded batches keyed by the device's ``seq``.

    Thread-safe: one connection guarded by a lock, shared by the agent and the uplink.
    """

    def __init__(self, path: str | Path, max_batches: int = 100_000) -> None:
        """Open (or create) the outbox at ``path``.

        Raises:
            OutboxError: the file cannot be opened as an SQLite database.
        """
        if max_batches < 1:
            raise ValueError("max_batches must be at least 1")
        self.path = Path(path)
        self.max_batches = max_batches
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox: {exc}") from exc

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

    def add(self, kind: BatchKind, build_payload: Callable[[int], bytes]) -> int:
        """Store a new batch and return its seq.

        ``build_payload(seq)`` is called inside the transaction with the seq the batch gets;
        the advanced seq and the batch commit together or not at all. At the cap the
        oldest telemetry batches are dropped first, events only when no telemetry is left.

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
                    payload = build_payload(seq)
                    now_ms = int(time.time() * 1000)
                    self._db.execute(
                        "INSERT INTO batches (seq, kind, payload, created_ms) VALUES (?, ?, ?, ?)",
                        (seq, kind, payload, now_ms),
                    )
                    self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
                    self._enforce_cap(now_ms)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: cannot store a {kind} batch: {exc}") from exc
            return seq

    def _enforce_cap(self, now_ms: int) -> None:
        (count,) = self._db.execute("SELECT count(*) FROM batches").fetchone()
        excess = count - self.max_batches
        for kind in KINDS:
            if excess <= 0:
                return
            victims = self._db.execute(
                "SELECT seq FROM batches WHERE kind = ? ORDER BY seq LIMIT ?", (kind, excess)
            ).fetchall()
            self._db.executemany("DELETE FROM batches WHERE seq = ?", victims)
            self._db.executemany(
                "INSERT INTO drops (seq, kind, dropped_ms) VALUES (?, ?, ?)",
                [(seq, kind, now_ms) for (seq,) in victims],
            )
            self._bump(f"dropped_{kind}", len(victims))
            excess -= len(victims)

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

    def drop_counts(self) -> dict[BatchKind, int]:
        """Return how many batches of each kind were ever dropped at the cap."""
        with self._lock:
            return {kind: self._meta(f"dropped_{kind}") for kind in KINDS}

    def dropped_seqs(self) -> list[tuple[int, BatchKind]]:
        """Return (seq, kind) of every batch dropped at the cap, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, kind FROM drops ORDER BY seq").fetchall()
        return [(int(seq), kind) for seq, kind in rows]
