"""The ingest's fast telemetry decoder never accepts what the contract's model refuses, reads
what it accepts exactly as the model does, and accepts every batch the model encodes."""

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fleetlink.cloud.ingest.telemetry_wire import decode_telemetry
from fleetlink.shared.codec import Format, encode, encode_raw
from fleetlink.shared.messages import (
    MAX_OFFSET_MS,
    MAX_SEQ,
    MAX_TIME_MS,
    Series,
    TelemetryBatch,
)

_DEVICE_CHARS = "abcXYZ019_.:-"


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and an int equal to the float it converts to only when
    both sides hold the same type."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def as_data(batch: Any) -> dict[str, Any]:
    return {
        "v": batch.v,
        "device_id": batch.device_id,
        "seq": batch.seq,
        "base_time_ms": batch.base_time_ms,
        "series": [
            {"signal_id": s.signal_id, "offsets_ms": list(s.offsets_ms), "values": list(s.values)}
            for s in batch.series
        ],
    }


floats = st.floats(allow_nan=True, allow_infinity=True)
series = st.integers(0, 12).flatmap(
    lambda n: st.builds(
        Series,
        signal_id=st.integers(0, 2**15 - 1),
        offsets_ms=st.lists(st.integers(0, MAX_OFFSET_MS), min_size=n, max_size=n),
        values=st.lists(floats, min_size=n, max_size=n),
    )
)
batches = st.builds(
    TelemetryBatch,
    device_id=st.text(_DEVICE_CHARS, min_size=1, max_size=64),
    seq=st.integers(1, MAX_SEQ),
    base_time_ms=st.integers(0, MAX_TIME_MS - 1),
    series=st.lists(series, max_size=6),
)


@settings(max_examples=200)
@given(batches, st.booleans())
def test_every_batch_the_model_encodes_is_read_by_the_fast_decoder_as_the_model_reads_it(
    batch: TelemetryBatch, compressed: bool
) -> None:
    payload = encode(batch, compress_above=0 if compressed else None)
    fast = decode_telemetry(payload)
    assert fast is not None
    assert same(as_data(fast), as_data(batch))


# Bodies near the contract: a valid batch with up to three of its fields (or a series' field,
# or one sample) set to a value of another type or out of bounds, removed, or joined by an
# unknown one.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    floats,
    st.sampled_from([0.0, 1.0, 2.5, -1.0, 2.0**53]),
    st.text(max_size=8),
    st.sampled_from(["1", "dev-1\n", "", "x" * 65, "d:e.v_1"]),
    st.binary(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
)
bounds = st.sampled_from(
    [-1, 0, 1, 2**15 - 1, 2**15, MAX_OFFSET_MS, MAX_OFFSET_MS + 1, MAX_SEQ, MAX_SEQ + 1, True]
) | st.sampled_from([MAX_TIME_MS - 1, MAX_TIME_MS, False])
odd = st.one_of(anything, bounds)


@st.composite
def near_batches(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = draw(batches).model_dump()
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["batch", "series", "sample"]))
        listed = body.get("series")
        series = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
        target = body
        if where != "batch" and series:
            target = draw(st.sampled_from(series))
            column = target.get(draw(st.sampled_from(["offsets_ms", "values"])))
            if where == "sample" and isinstance(column, list) and column:
                column[draw(st.integers(0, len(column) - 1))] = draw(odd)
                continue
        key = draw(st.sampled_from([*sorted(target), "extra"]))
        if draw(st.booleans()):
            target[key] = draw(odd)
        else:
            target.pop(key, None)
    return body


@settings(max_examples=500)
@given(near_batches())
def test_what_the_fast_decoder_accepts_the_model_accepts_with_the_same_values(
    body: dict[str, Any],
) -> None:
    fast = decode_telemetry(encode_raw(body))
    if fast is None:
        return
    try:
        model = TelemetryBatch.model_validate(body)
    except ValidationError as exc:
        pytest.fail(f"the fast decoder accepted what the model refuses: {body!r}: {exc}")
    assert same(as_data(fast), as_data(model))


def test_other_body_formats_and_broken_frames_are_left_to_the_model() -> None:
    body = {"device_id": "dev-1", "seq": 1, "base_time_ms": 0, "series": []}
    assert decode_telemetry(encode_raw(body)) is not None
    assert decode_telemetry(encode_raw(body, Format.JSON)) is None
    assert decode_telemetry(b"\x01") is None
    assert decode_telemetry(b"\x09\x00\x80") is None
    too_many = {
        **body,
        "series": [{"signal_id": 1, "offsets_ms": [0] * 20_001, "values": [1.0] * 20_001}],
    }
    assert decode_telemetry(encode_raw(too_many)) is None
    uneven = {**body, "series": [{"signal_id": 1, "offsets_ms": [0, 1], "values": [1.0]}]}
    assert decode_telemetry(encode_raw(uneven)) is None
