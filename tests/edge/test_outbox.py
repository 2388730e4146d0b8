"""The SQLite outbox: seqs never reused, acks delete only what they name, the cap drops telemetry
first and counts every drop."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fleetlink.edge.outbox import CAP_LOW_WATER, Outbox
from fleetlink.shared.codec import decode, encode
from fleetlink.shared.messages import EventBatch, Series, TelemetryBatch

ROOT = Path(__file__).parents[2]


def payload(seq: int) -> bytes:
    return f"batch-{seq:08d}".encode()


SIZE = len(payload(1))


def test_seq_starts_at_one_and_the_payload_sees_its_own_seq(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        assert outbox.add("telemetry", payload) == 1
        assert outbox.add("events", payload) == 2
        assert [(b.seq, b.kind, b.payload) for b in outbox.pending()] == [
            (2, "events", payload(2)),
            (1, "telemetry", payload(1)),
        ]


def test_database_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    import sqlite3

    Outbox(tmp_path / "o.db").close()
    db = sqlite3.connect(tmp_path / "o.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_seq_is_not_reused_after_all_rows_are_acked_and_the_file_reopened(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        seqs = [outbox.add("telemetry", payload) for _ in range(3)]
        assert outbox.ack(seqs) == 3 and len(outbox) == 0
    with Outbox(tmp_path / "o.db") as outbox:
        assert outbox.add("telemetry", payload) == 4


def test_failing_payload_builder_stores_nothing_and_consumes_no_seq(tmp_path: Path) -> None:
    def broken(seq: int) -> bytes:
        raise RuntimeError("encoder failed")

    with Outbox(tmp_path / "o.db") as outbox:
        with pytest.raises(RuntimeError):
            outbox.add("telemetry", broken)
        assert len(outbox) == 0
        assert outbox.add("telemetry", payload) == 1


def test_ack_deletes_only_the_acked_seqs_and_ignores_unknown_ones(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        for _ in range(5):
            outbox.add("telemetry", payload)
        assert outbox.ack([2, 4, 99]) == 2
        assert [b.seq for b in outbox.pending()] == [1, 3, 5]


def test_cap_drops_oldest_telemetry_first_and_events_last(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_bytes=3 * SIZE) as outbox:
        outbox.add("telemetry", payload)  # 1
        outbox.add("events", payload)  # 2
        outbox.add("telemetry", payload)  # 3
        outbox.add("telemetry", payload)  # 4 -> drops 1
        outbox.add("events", payload)  # 5 -> drops 3
        assert sorted(b.seq for b in outbox.pending()) == [2, 4, 5]
        outbox.add("events", payload)  # 6 -> drops 4, the last telemetry
        outbox.add("events", payload)  # 7 -> only events left: drops 2
        assert sorted(b.seq for b in outbox.pending()) == [5, 6, 7]
        assert outbox.drop_counts() == {"telemetry": 3, "events": 1}
        assert outbox.dropped_seqs() == [(1, "telemetry"), (2, "events"), (3, "telemetry"),
                                         (4, "telemetry")]  # fmt: skip
    with Outbox(tmp_path / "o.db", max_bytes=3 * SIZE) as outbox:
        assert outbox.drop_counts() == {"telemetry": 3, "events": 1}


def _telemetry(seq: int, base_ms: int, signals: range, per_signal: int) -> bytes:
    series = [
        Series(signal_id=sid, offsets_ms=list(range(per_signal)), values=[1.0] * per_signal)
        for sid in signals
    ]
    return encode(TelemetryBatch(device_id="dev-1", seq=seq, base_time_ms=base_ms, series=series))


def test_telemetry_dropped_at_the_byte_cap_becomes_one_gap_event_kept_last(tmp_path: Path):
    one = len(_telemetry(1, 1_000, range(10, 15), 20))
    with Outbox(tmp_path / "o.db", max_bytes=3 * one + 50) as outbox:
        outbox.add("events", lambda s: encode(EventBatch(device_id="dev-1", seq=s, events=[])))
        for i in range(4):
            outbox.add(
                "telemetry", lambda s, i=i: _telemetry(s, 1_000 + i * 100, range(10, 15), 20)
            )
        assert outbox.stored_bytes <= outbox.max_bytes + 300
        kinds = [b.kind for b in outbox.pending()]
        # Over the cap, the oldest telemetry goes until the outbox is at 90 % of it.
        assert kinds[:2] == ["events", "events"] and kinds.count("telemetry") == 2
        gap_batch = decode(outbox.pending()[1].payload, EventBatch)
        (event,) = gap_batch.events
        assert event.type == "gap" and event.data["reason"] == "outbox_cap"
        assert event.data["start_ms"] == 1_000 and event.data["end_ms"] == 1_119
        assert event.data["signals"] == "10-14" and event.data["samples"] == 200
        assert event.data["batches"] == 2 and outbox.samples_added == 0
    with Outbox(tmp_path / "o.db") as outbox:  # the byte count survives a reopen
        assert outbox.stored_bytes == sum(len(b.payload) for b in outbox.pending())


def test_cloud_high_water_mark_raises_the_next_seq_but_never_lowers_it(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        assert outbox.raise_next_seq(41) == 42
        assert outbox.raise_next_seq(5) == 42
        assert outbox.add("telemetry", payload) == 42


_WRITER = """
import sys
from fleetlink.edge.outbox import CAP_LOW_WATER, Outbox
from fleetlink.shared.codec import decode, encode
from fleetlink.shared.messages import EventBatch, Series, TelemetryBatch
outbox = Outbox(sys.argv[1])
while True:
    seq = outbox.add("telemetry", lambda s: b"x" * 100)
    print(seq, flush=True)
"""


def test_batches_and_seqs_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported = [int(proc.stdout.readline()) for _ in range(30)]
    proc.kill()
    proc.wait()
    with Outbox(db) as outbox:
        stored = [b.seq for b in outbox.pending()]
        assert stored[:30] == reported
        assert stored == list(range(1, len(stored) + 1))
        assert outbox.add("telemetry", payload) == len(stored) + 1


class OutboxMachine(RuleBasedStateMachine):
    """The outbox against a model: a dict of live batches and the set of seqs ever given out."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "o.db")
        self.cap = 6
        self.outbox = Outbox(self.path, max_bytes=self.cap * SIZE)
        self.live: dict[int, str] = {}
        self.issued: list[int] = []
        self.dropped = {"telemetry": 0, "events": 0}

    @rule(kind=st.sampled_from(["telemetry", "events"]))
    def add(self, kind: str) -> None:
        seq = self.outbox.add(kind, payload)  # type: ignore[arg-type]
        assert not self.issued or seq > self.issued[-1]
        self.issued.append(seq)
        self.live[seq] = kind
        if len(self.live) <= self.cap:
            return
        while len(self.live) * SIZE > int(self.cap * SIZE * CAP_LOW_WATER):
            telemetry = [s for s, k in self.live.items() if k == "telemetry"]
            victim = min(telemetry) if telemetry else min(self.live)
            self.dropped[self.live.pop(victim)] += 1

    @precondition(lambda self: bool(self.issued))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        seqs = data.draw(st.lists(st.sampled_from(self.issued), max_size=4))
        expected = len(set(seqs) & set(self.live))
        assert self.outbox.ack(seqs) == expected
        for seq in seqs:
            self.live.pop(seq, None)

    @rule()
    def reopen(self) -> None:
        self.outbox.close()
        self.outbox = Outbox(self.path, max_bytes=self.cap * SIZE)

    @invariant()
    def matches_model(self) -> None:
        pending = self.outbox.pending()
        assert {b.seq: b.kind for b in pending} == self.live
        kinds = [b.kind for b in pending]
        assert kinds == sorted(kinds, key=lambda k: k == "telemetry")
        assert self.outbox.drop_counts() == self.dropped
        assert self.outbox.next_seq == (self.issued[-1] + 1 if self.issued else 1)

    def teardown(self) -> None:
        self.outbox.close()


OutboxMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_outbox_matches_its_model_across_adds_acks_and_reopens = OutboxMachine.TestCase
