"""Samples become columnar telemetry batches on time or on size."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetlink.edge.batcher import Batcher
from fleetlink.edge.sources.base import Sample
from fleetlink.shared.codec import decode, encode
from fleetlink.shared.messages import TelemetryBatch


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batch_is_due_after_the_interval_not_before() -> None:
    clock = FakeClock()
    batcher = Batcher(interval_s=1.0, max_samples=100, monotonic=clock)
    assert not batcher.due()
    batcher.add(Sample(12, 1_000, 800.0))
    clock.now += 0.9
    assert not batcher.due()
    clock.now += 0.2
    assert batcher.due()


def test_batch_is_due_at_max_samples() -> None:
    batcher = Batcher(interval_s=60, max_samples=3, monotonic=FakeClock())
    assert not batcher.add(Sample(12, 1, 1.0))
    assert not batcher.add(Sample(12, 2, 2.0))
    assert batcher.add(Sample(12, 3, 3.0))
    assert batcher.due()


def test_take_empties_the_batcher_and_an_empty_batcher_gives_none() -> None:
    batcher = Batcher(monotonic=FakeClock())
    assert batcher.take() is None
    batcher.add(Sample(13, 5, 40.0))
    assert batcher.take() is not None
    assert len(batcher) == 0 and batcher.take() is None


def test_batch_is_columnar_per_signal_with_offsets_from_the_earliest_sample() -> None:
    batcher = Batcher(monotonic=FakeClock())
    for sample in [
        Sample(13, 10_050, 42.0),
        Sample(12, 10_000, 800.0),
        Sample(12, 10_200, 820.0),
        Sample(256, 10_100, 12.6),
    ]:
        batcher.add(sample)
    draft = batcher.take()
    assert draft is not None
    batch = draft.to_message("truck-1", 7)
    assert batch.seq == 7 and batch.base_time_ms == 10_000
    assert [(s.signal_id, s.offsets_ms, s.values) for s in batch.series] == [
        (12, [0, 200], [800.0, 820.0]),
        (13, [50], [42.0]),
        (256, [100], [12.6]),
    ]


samples = st.lists(
    st.builds(
        Sample,
        signal_id=st.sampled_from([4, 5, 12, 13, 256]),
        time_ms=st.integers(1_700_000_000_000, 1_700_000_100_000),
        value=st.floats(-1e6, 1e6, allow_nan=False),
    ),
    min_size=1,
    max_size=200,
)


@given(samples)
def test_every_sample_survives_batching_and_the_codec(items: list[Sample]) -> None:
    batcher = Batcher(max_samples=1000, monotonic=FakeClock())
    for sample in items:
        batcher.add(sample)
    draft = batcher.take()
    assert draft is not None
    batch = decode(encode(draft.to_message("d", 1)), TelemetryBatch)
    back = sorted(
        (s.signal_id, batch.base_time_ms + off, val)
        for s in batch.series
        for off, val in zip(s.offsets_ms, s.values, strict=True)
    )
    assert back == sorted((s.signal_id, s.time_ms, s.value) for s in items)
    assert batch.sample_count == len(items)


def test_while_offline_a_batch_grows_to_the_offline_age() -> None:
    clock = FakeClock()
    batcher = Batcher(interval_s=1.0, max_samples=100, monotonic=clock, offline_interval_s=30)
    batcher.online = False
    batcher.add(Sample(12, 1_000, 800.0))
    clock.now += 29
    assert not batcher.due()
    clock.now += 1
    assert batcher.due()
    batcher.take()
    batcher.add(Sample(12, 2_000, 800.0))
    batcher.online = True  # back online: the usual age again
    clock.now += 1
    assert batcher.due()
