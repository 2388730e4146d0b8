import contextlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlink.shared import codec
from fleetlink.shared.messages import (
    MAX_SAMPLES_PER_BATCH,
    MAX_SEQ,
    MAX_TIME_MS,
    Ack,
    Event,
    EventBatch,
    Series,
    Status,
    TelemetryBatch,
)

device_ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
seqs = st.integers(min_value=1, max_value=MAX_SEQ)
unix_ms = st.integers(min_value=0, max_value=MAX_TIME_MS - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def series(draw: st.DrawFn) -> Series:
    n = draw(st.integers(min_value=0, max_value=50))
    return Series(
        signal_id=draw(st.integers(min_value=0, max_value=2**15 - 1)),
        offsets_ms=draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n)),
        values=draw(st.lists(finite, min_size=n, max_size=n)),
    )


telemetry = st.builds(
    TelemetryBatch,
    device_id=device_ids,
    seq=seqs,
    base_time_ms=unix_ms,
    series=st.lists(series(), max_size=8),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, st.text(max_size=256)
)
events = st.builds(
    Event,
    id=st.uuids(),
    time_ms=unix_ms,
    type=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    severity=st.sampled_from(["info", "warning", "critical"]),
    data=st.dictionaries(st.text(max_size=10), scalars, max_size=4),
)
event_batches = st.builds(
    EventBatch, device_id=device_ids, seq=seqs, events=st.lists(events, max_size=5)
)
acks = st.builds(Ack, device_id=device_ids, seqs=st.lists(seqs, max_size=20))
statuses = st.builds(Status, device_id=device_ids, online=st.booleans(), time_ms=unix_ms)
formats = st.sampled_from(list(codec.Format))
thresholds = st.sampled_from([None, 0, codec.COMPRESS_ABOVE_BYTES])


@given(telemetry, formats, thresholds)
def test_telemetry_batch_survives_every_format(batch, fmt, threshold):
    assert codec.decode(codec.encode(batch, fmt, threshold), TelemetryBatch) == batch


@given(event_batches, formats, thresholds)
def test_event_batch_survives_every_format(batch, fmt, threshold):
    assert codec.decode(codec.encode(batch, fmt, threshold), EventBatch) == batch


@given(st.one_of(acks, statuses))
def test_ack_and_status_survive_the_default_format(message):
    assert codec.decode(codec.encode(message), type(message)) == message


def test_large_batches_are_compressed_and_small_ones_are_not():
    big = TelemetryBatch(
        device_id="d",
        seq=1,
        base_time_ms=0,
        series=[Series(signal_id=12, offsets_ms=list(range(500)), values=[1.0] * 500)],
    )
    small = Ack(device_id="d", seqs=[1])
    assert codec.encode(big)[1] & 0b100
    assert not codec.encode(small)[1] & 0b100


@given(st.binary(max_size=200))
def test_garbage_raises_codec_error_and_nothing_else(payload):
    with pytest.raises(codec.CodecError):
        codec.decode(payload, TelemetryBatch)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x01", "too short"),
        (b"\x09\x00\x80", "codec version 9"),
        (b"\x01\x03\x80", "unknown body format"),
        (b"\x01\x40\x80", "unknown codec flags"),
        (b"\x01\x04garbage", "does not decode"),
        (b"\x01\x00\x93\x01\x02\x03", "expected a map"),
    ],
)
def test_malformed_frames_say_what_is_wrong(payload, reason):
    with pytest.raises(codec.CodecError, match=reason):
        codec.decode(payload, TelemetryBatch)


def test_a_batch_with_mismatched_columns_is_rejected():
    body = {
        "v": 1,
        "device_id": "d",
        "seq": 1,
        "base_time_ms": 0,
        "series": [{"signal_id": 12, "offsets_ms": [0, 1], "values": [1.0]}],
    }
    payload = bytes((1, 0)) + __import__("msgpack").packb(body)
    with pytest.raises(codec.CodecError, match="2 offsets but 1 values"):
        codec.decode(payload, TelemetryBatch)


def test_event_ids_keep_their_uuid_type():
    batch = EventBatch(
        device_id="d",
        seq=3,
        events=[Event(id=uuid.uuid4(), time_ms=1, type="dtc_set", data={"code": "P0301"})],
    )
    decoded = codec.decode(codec.encode(batch), EventBatch)
    assert isinstance(decoded.events[0].id, uuid.UUID)


out_of_range_seqs = st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_SEQ + 1))
out_of_range_times = st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_TIME_MS))


@given(device_ids, out_of_range_seqs, unix_ms)
def test_seq_beyond_the_contract_does_not_decode(device, seq, time_ms):
    body = {"v": 1, "device_id": device, "seq": seq, "base_time_ms": time_ms, "series": []}
    payload = codec.encode_raw(body, codec.Format.JSON)
    with pytest.raises(codec.CodecError, match="seq"):
        codec.decode(payload, TelemetryBatch)


@given(device_ids, seqs, out_of_range_times, st.sampled_from(["telemetry", "status", "event"]))
def test_time_beyond_the_contract_does_not_decode(device, seq, time_ms, kind):
    if kind == "telemetry":
        body, model = (
            {"device_id": device, "seq": seq, "base_time_ms": time_ms, "series": []},
            TelemetryBatch,
        )
    elif kind == "status":
        body, model = {"device_id": device, "online": True, "time_ms": time_ms}, Status
    else:
        event = {"id": str(uuid.uuid4()), "time_ms": time_ms, "type": "x"}
        body, model = {"device_id": device, "seq": seq, "events": [event]}, EventBatch
    with pytest.raises(codec.CodecError, match="time_ms"):
        codec.decode(codec.encode_raw(body, codec.Format.JSON), model)


def test_more_samples_than_a_batch_may_hold_do_not_decode():
    n = MAX_SAMPLES_PER_BATCH // 2 + 1
    series = [{"signal_id": sid, "offsets_ms": [0] * n, "values": [1.0] * n} for sid in (1, 2)]
    body = {"device_id": "d", "seq": 1, "base_time_ms": 0, "series": series}
    with pytest.raises(codec.CodecError, match="samples in one batch"):
        codec.decode(codec.encode_raw(body, codec.Format.JSON), TelemetryBatch)


@given(st.integers(min_value=codec.MAX_BODY_BYTES + 1, max_value=64 * 1024 * 1024))
def test_a_zstd_bomb_is_refused_without_decompressing_it(size):
    import zstandard

    bomb = bytes((1, 0b100)) + zstandard.ZstdCompressor().compress(bytes(size))
    assert len(bomb) < 4096
    with pytest.raises(codec.CodecError, match="more than"):
        codec.decode_raw(bomb)


@given(st.binary(max_size=2048))
def test_any_bytes_either_decode_or_raise_codec_error(payload):
    for model in (TelemetryBatch, EventBatch, Status, Ack):
        with contextlib.suppress(codec.CodecError):
            codec.decode(payload, model)


def test_a_status_from_an_earlier_device_decodes_without_a_vehicle_report() -> None:
    from fleetlink.shared.messages import VehicleReport

    earlier = {"v": 1, "device_id": "van-1", "online": True, "time_ms": 1, "adapter": "connected"}
    assert codec.decode(codec.encode_raw(earlier), Status).vehicle is None
    report = VehicleReport(
        profile="generic-obd2",
        profile_version="1.0.0",
        power="ignition_off",
        battery_v=12.4,
        capabilities={"vin": "1G1JC5444R7252367", "protocol": "6", "supported_pids": 42},
    )
    now = Status(device_id="van-1", online=True, time_ms=1, vehicle=report)
    assert codec.decode(codec.encode(now), Status) == now
    with pytest.raises(codec.CodecError):
        codec.decode(codec.encode_raw({**earlier, "vehicle": {"power": "asleep"}}), Status)
    # A field from a newer agent is ignored: devices may be upgraded before the cloud.
    assert codec.decode(codec.encode_raw({**earlier, "later": {"x": 1}}), Status).online


def test_a_zstd_frame_that_understates_its_size_is_refused_not_inflated() -> None:
    import zstandard

    frame = bytearray(zstandard.ZstdCompressor(write_content_size=True).compress(b"a" * 5_000_000))
    frame[6:10] = (100).to_bytes(4, "little")  # the 4-byte content size field now says 100
    assert zstandard.frame_content_size(bytes(frame)) == 100
    payload = bytes([codec.CODEC_VERSION, 0b100]) + bytes(frame)
    with pytest.raises(codec.CodecError, match="zstd body does not decode"):
        codec.decode_raw(payload)
