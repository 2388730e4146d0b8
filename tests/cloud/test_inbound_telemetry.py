"""Classifying a telemetry batch keeps exactly its finite samples, at their times, and the
newest finite value of each signal, however the series share or repeat their offsets (the
classifier works per distinct offsets list and per series, not per sample: D100)."""

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fleetlink.cloud.ingest.inbound import Delivery, IngestRules, TelemetryIn, classify
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Series, TelemetryBatch

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BASE_MS = int((NOW - timedelta(hours=1)).timestamp() * 1000)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SIGNALS = (0x04, 0x05, 0x0C, 0x0D)

offsets = st.lists(st.integers(0, 60_000), min_size=1, max_size=6)
values = st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@st.composite
def batches(draw: st.DrawFn) -> TelemetryBatch:
    shared = draw(offsets)
    series = []
    for _ in range(draw(st.integers(1, 5))):
        own = shared if draw(st.booleans()) else draw(offsets)
        series.append(
            Series(
                signal_id=draw(st.sampled_from(SIGNALS)),
                offsets_ms=own,
                values=draw(st.lists(values, min_size=len(own), max_size=len(own))),
            )
        )
    return TelemetryBatch(device_id="dev", seq=1, base_time_ms=BASE_MS, series=series)


def _expected(batch: TelemetryBatch) -> tuple[list[tuple[int, datetime, float]], dict, int]:
    """The same result worked out one sample at a time."""
    rows, latest, not_finite = [], {}, 0
    for s in batch.series:
        newest = None
        for off, v in zip(s.offsets_ms, s.values, strict=True):
            ts = EPOCH + timedelta(milliseconds=BASE_MS + off)
            if not math.isfinite(v):
                not_finite += 1
                continue
            rows.append((s.signal_id, ts, v))
            if newest is None or ts > newest[0]:
                newest = (ts, v)
        if newest and (s.signal_id not in latest or latest[s.signal_id][0] < newest[0]):
            latest[s.signal_id] = newest
    return rows, latest, not_finite


@given(batches())
def test_telemetry_keeps_every_finite_sample_and_the_newest_value_per_signal(batch):
    item = classify(Delivery("fl/v1/t/dev/telemetry", encode(batch), 1, 1, NOW), NOW, IngestRules())
    assert isinstance(item, TelemetryIn)
    rows, latest, not_finite = _expected(batch)
    assert item.rows == rows
    assert item.sample_count == len(rows)
    assert item.latest == latest
    assert item.not_finite == not_finite
    every = [off for s in batch.series for off in s.offsets_ms]
    assert item.first_ts == EPOCH + timedelta(milliseconds=BASE_MS + min(every))
    assert item.last_ts == EPOCH + timedelta(milliseconds=BASE_MS + max(every))
