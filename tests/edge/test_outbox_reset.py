"""Local state cannot silently reset: an empty or corrupt outbox is moved aside, a new one
waits for the cloud's high-water mark, and no seq is ever reused (issue 16, probe 5)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlink.edge.agent import Agent
from fleetlink.edge.config import parse_config
from fleetlink.edge.outbox import SEQ_RESERVE, Outbox, SeqSpaceExhausted
from fleetlink.edge.uplink import with_seq
from fleetlink.shared.codec import decode, encode
from fleetlink.shared.messages import MAX_SEQ, Series, TelemetryBatch


def batch(seq: int) -> bytes:
    series = [Series(signal_id=13, offsets_ms=[0], values=[float(seq)])]
    return encode(
        TelemetryBatch(device_id="d", seq=seq, base_time_ms=1_700_000_000_000, series=series)
    )


def seq_in(payload: bytes) -> int:
    return decode(payload, TelemetryBatch).seq


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"this is not an sqlite database at all" * 100, "corrupt")],
)
def test_an_empty_or_corrupt_outbox_is_moved_aside_with_one_log_line(
    tmp_path: Path, content: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR), Outbox(path) as outbox:
        assert outbox.reset_reason == reason
        assert not outbox.confirmed
        assert outbox.add("telemetry", batch) == 1
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(f"outbox.db.{reason}-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    lines = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1 and str(aside[0]) in lines[0].getMessage()


def test_the_agent_starts_on_a_corrupt_outbox_instead_of_exiting(tmp_path: Path) -> None:
    (tmp_path / "outbox.db").write_bytes(b"\x00garbage" * 512)
    config = parse_config(
        {"device": {"id": "d1", "tenant": "acme"}, "outbox": {"path": str(tmp_path / "outbox.db")}}
    )
    agent = Agent(config, sources=[])
    try:
        assert agent.outbox.reset_reason == "corrupt"
        assert agent.flush() is None  # nothing batched yet, but the outbox works
    finally:
        agent.outbox.close()


def test_adopting_the_clouds_mark_renumbers_batches_stored_before_it(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        for _ in range(3):
            outbox.add("telemetry", batch)
        assert outbox.adopt_high_water(500, with_seq) == 3
        pending = outbox.pending()
        assert [b.seq for b in pending] == [501, 502, 503]
        assert [seq_in(b.payload) for b in pending] == [501, 502, 503]
        assert outbox.next_seq == 504 and outbox.confirmed
        # A lower mark later changes nothing.
        assert outbox.adopt_high_water(10, with_seq) == 0
        assert outbox.next_seq == 504


def test_a_confirmed_outbox_keeps_the_seq_of_a_batch_the_cloud_may_already_hold(tmp_path: Path):
    """Its ack was lost with the link: renumbering it on the next hello would store it twice."""
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.adopt_high_water(0, with_seq)
        outbox.add("telemetry", batch)  # published, stored by the cloud, ack lost
        assert outbox.adopt_high_water(1, with_seq) == 0
        assert [b.seq for b in outbox.pending()] == [1]  # sent again under seq 1: a duplicate
        assert outbox.add("telemetry", batch) == 2


def test_a_batch_the_cloud_holds_other_bytes_for_is_renumbered_not_deleted(tmp_path: Path):
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.add("telemetry", batch)
        outbox.add("telemetry", batch)
        assert outbox.renumber([1], with_seq) == 1
        assert [(b.seq, seq_in(b.payload)) for b in outbox.pending()] == [(2, 2), (3, 3)]


def test_a_device_near_the_end_of_its_seq_space_recovers_with_the_clouds_mark(
    tmp_path: Path,
) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.add("telemetry", batch)  # seq 1, unacked
        outbox.raise_next_seq(MAX_SEQ)  # a forged or corrupt mark pushed it to the end
        assert outbox.seq_space_low
        with pytest.raises(SeqSpaceExhausted):
            outbox.add("telemetry", batch)
        outbox.adopt_high_water(40, with_seq)  # the cloud holds up to 40
        assert not outbox.seq_space_low
        assert [b.seq for b in outbox.pending()] == [41]  # renumbered above the mark
        assert outbox.add("telemetry", batch) == 42


def test_a_high_cloud_mark_near_the_end_is_not_lowered(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.raise_next_seq(MAX_SEQ - SEQ_RESERVE + 5)
        mark = MAX_SEQ - 10
        outbox.adopt_high_water(mark, with_seq)
        assert outbox.next_seq == mark + 1


@settings(max_examples=60)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(1, 3)),
            st.tuples(st.just("ack_oldest"), st.integers(1, 3)),
            st.tuples(st.just("hello"), st.integers(0, 60)),
            st.tuples(st.just("collide"), st.integers(0, 2)),
        ),
        max_size=30,
    )
)
def test_no_seq_is_ever_used_for_two_batches(ops: list[tuple[str, int]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, Outbox(Path(tmp) / "o.db") as outbox:
        used: set[int] = set()
        cloud_holds: set[int] = set()
        for op, n in ops:
            if op == "add":
                for _ in range(n):
                    seq = outbox.add("telemetry", batch)
                    assert seq not in used
                    used.add(seq)
            elif op == "ack_oldest":
                acked = [b.seq for b in outbox.pending()[:n]]
                cloud_holds |= set(acked)
                outbox.ack(acked)
            elif op == "hello":
                mark = max(cloud_holds | {n})
                before = {b.seq for b in outbox.pending()}
                outbox.adopt_high_water(mark, with_seq)
                cloud_holds.add(mark)
                after = {b.seq for b in outbox.pending()}
                assert len(after) == len(before)
                assert not (after - before) & used
                used |= after
                assert all(s > mark for s in after - before)
            else:
                pending = [b.seq for b in outbox.pending()][:n]
                before = {b.seq for b in outbox.pending()}
                outbox.renumber(pending, with_seq)
                after = {b.seq for b in outbox.pending()}
                assert not (after - before) & used
                used |= after
            for b in outbox.pending():
                assert seq_in(b.payload) == b.seq


def test_an_agent_whose_seq_space_is_used_up_keeps_running_and_keeps_its_samples(
    tmp_path: Path,
) -> None:
    from fleetlink.edge.sources.base import Sample

    config = parse_config(
        {"device": {"id": "d1", "tenant": "acme"}, "outbox": {"path": str(tmp_path / "o.db")}}
    )
    agent = Agent(config, sources=[])
    try:
        agent.outbox.raise_next_seq(MAX_SEQ)  # the next seq would leave the contract
        agent.batcher.add(Sample(13, 1_700_000_000_000, 50.0))
        assert agent.flush() is None  # not stored, not lost, no exception
        assert len(agent.unstored) == 1 and agent.counters["outbox_write_failures"] == 1
        agent.outbox.adopt_high_water(7, with_seq)  # the cloud's answer to hello
        assert agent.flush() == 8
        assert [seq_in(b.payload) for b in agent.outbox.pending()] == [8]
    finally:
        agent.outbox.close()
