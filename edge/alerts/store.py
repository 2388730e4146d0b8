"""The device's alert record, a SQLite file beside the outbox: the recent alerts, each
rule's occurrences (so the repeat count behind an escalation survives a restart), and the
driver's acknowledgements until their event is on its way to the cloud.

The agent and ``fleetlink edge alerts ack`` (another process) share the file; SQLite's WAL
and a busy timeout keep their writes apart.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from fleetlink.edge.alerts.alert import Alert

_KEEP_ALERTS_MS = 7 * 86_400_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id        TEXT PRIMARY KEY,
    rule      TEXT NOT NULL,
    time_ms   INTEGER NOT NULL,
    message   TEXT NOT NULL,
    severity  TEXT NOT NULL,
    escalated INTEGER NOT NULL DEFAULT 0,
    acked_ms  INTEGER,
    acked_via TEXT,
    ack_sent  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time_ms);
CREATE TABLE IF NOT EXISTS occurrences (
    rule     TEXT NOT NULL,
    time_ms  INTEGER NOT NULL,
    alert_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS occurrences_rule ON occurrences (rule, time_ms);
"""


class AlertStoreError(RuntimeError):
    """Raised when the alert record cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: uuid.UUID
    rule: str
    time_ms: int
    message: str
    severity: str
    escalated: bool
    acked_ms: int | None
    acked_via: str | None


def alert_store_path(outbox_path: Path) -> Path:
    """Return where the alert record lives: beside the outbox database."""
    return outbox_path.with_name("alerts.sqlite3")


class AlertStore:
    """The alert record in the SQLite file at ``path`` (created when missing).

    Raises:
        AlertStoreError: the file cannot be opened or is not an alert record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AlertStoreError(
                f"{path}: cannot open the alert record: {exc}; move the file aside to start "
                "a new one"
            ) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, alert: Alert, within_ms: int) -> int:
        """Store ``alert`` as an occurrence of its rule; return how many occurrences of that
        rule (this one included) lie within ``within_ms`` before it."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO alerts (id, rule, time_ms, message, severity) "
                "VALUES (?, ?, ?, ?, ?)",
                (str(alert.id), alert.rule, alert.time_ms, alert.message, alert.severity),
            )
            self._db.execute(
                "DELETE FROM occurrences WHERE rule = ? AND time_ms <= ?",
                (alert.rule, alert.time_ms - within_ms),
            )
            self._db.execute(
                "INSERT INTO occurrences (rule, time_ms, alert_id) VALUES (?, ?, ?)",
                (alert.rule, alert.time_ms, str(alert.id)),
            )
            self._db.execute(
                "DELETE FROM alerts WHERE time_ms < ? AND (acked_ms IS NULL OR ack_sent = 1)",
                (alert.time_ms - _KEEP_ALERTS_MS,),
            )
            (count,) = self._db.execute(
                "SELECT count(*) FROM occurrences WHERE rule = ?", (alert.rule,)
            ).fetchone()
        return int(count)

    def escalated(self, alert_id: uuid.UUID, rule: str) -> None:
        """Mark ``alert_id`` escalated and start the rule's repeat count afresh."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE alerts SET escalated = 1 WHERE id = ?", (str(alert_id),))
            self._db.execute("DELETE FROM occurrences WHERE rule = ?", (rule,))

    def acknowledge(self, alert_id: uuid.UUID, via: str, time_ms: int) -> bool:
        """Record the driver's acknowledgement; return False for an unknown or already
        acknowledged alert."""
        cursor = self._db.execute(
            "UPDATE alerts SET acked_ms = ?, acked_via = ? WHERE id = ? AND acked_ms IS NULL",
            (time_ms, via, str(alert_id)),
        )
        return cursor.rowcount == 1

    def unsent_acks(self) -> list[StoredAlert]:
        """Return the acknowledged alerts whose acknowledgement is not yet on its way."""
        return self._select("WHERE acked_ms IS NOT NULL AND ack_sent = 0 ORDER BY acked_ms")

    def ack_sent(self, alert_id: uuid.UUID) -> None:
        self._db.execute("UPDATE alerts SET ack_sent = 1 WHERE id = ?", (str(alert_id),))

    def recent(self, limit: int = 20, unacknowledged: bool = False) -> list[StoredAlert]:
        """Return the newest alerts first (only those not acknowledged, if asked)."""
        where = "WHERE acked_ms IS NULL " if unacknowledged else ""
        return self._select(f"{where}ORDER BY time_ms DESC LIMIT {int(limit)}")

    def _select(self, tail: str) -> list[StoredAlert]:
        rows = self._db.execute(
            "SELECT id, rule, time_ms, message, severity, escalated, acked_ms, acked_via "
            f"FROM alerts {tail}"
        ).fetchall()
        return [
            StoredAlert(uuid.UUID(r[0]), r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])
            for r in rows
        ]
