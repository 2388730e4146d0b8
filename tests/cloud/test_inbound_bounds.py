"""Bounded input: whatever a client publishes, classification gives a stored batch, a
quarantined one or a dead letter with a reason, never an exception (issue 16, probe 2)."""

import math
from datetime import UTC, datetime

import zstandard
from hypothesis import given
from hypothesis import strategies as st

from fleetlink.cloud.ingest.inbound import (
    DeadLetter,
    Delivery,
    IngestRules,
    Quarantined,
    TelemetryIn,
    classify,
)
from fleetlink.shared.codec import Format, encode_raw

NOW = datetime(2026, 6, 1, tzinfo=UTC)
RULES = IngestRules()
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
batch_like = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 2]),
        "device_id": st.just("dev"),
        "seq": st.integers(min_value=-5, max_value=2**70),
        "base_time_ms": st.integers(min_value=-(2**70), max_value=2**70),
        "time_ms": st.integers(min_value=-(2**70), max_value=2**70),
        "online": st.booleans(),
        "series": st.lists(
            st.fixed_dictionaries(
                {
                    "signal_id": st.integers(-5, 2**16),
                    "offsets_ms": st.lists(st.integers(-5, 2**40), max_size=5),
                    "values": st.lists(st.floats(), max_size=5),
                }
            ),
            max_size=3,
        ),
    },
    optional={"extra": json_values},
)


def delivery(topic_name: str, payload: bytes) -> Delivery:
    return Delivery(topic_name, payload, 1, 1, NOW)


@given(
    st.sampled_from(["telemetry", "events", "status", "hello", "ack", "x"]),
    st.one_of(batch_like, json_values),
    st.sampled_from(list(Format)),
)
def test_classify_never_raises_whatever_the_body(kind, body, fmt):
    try:
        payload = encode_raw(body if isinstance(body, dict) else {"x": body}, fmt)
    except (OverflowError, ValueError, TypeError):
        return  # the format cannot even carry it
    item = classify(delivery(f"fl/v1/t/dev/{kind}", payload), NOW, RULES)
    if isinstance(item, TelemetryIn):
        lo, hi = RULES.window(NOW)
        assert all(lo <= ts <= hi and math.isfinite(v) for _, ts, v in item.rows)
    if isinstance(item, DeadLetter | Quarantined):
        assert item.reason


@given(st.binary(max_size=300), st.text(max_size=400))
def test_classify_never_raises_on_any_bytes_or_topic(payload, topic_name):
    assert classify(delivery(topic_name, payload), NOW, RULES) is not None


def test_the_probes_are_dead_letters_with_reasons_not_exceptions():
    max_time = {"device_id": "d", "seq": 1, "base_time_ms": 2**53 - 1, "series": []}
    big = {"device_id": "d", "online": True, "time_ms": 2**62}
    bomb = bytes((1, 0b100)) + zstandard.ZstdCompressor().compress(bytes(50_000_000))
    for kind, payload in (
        ("telemetry", encode_raw(max_time)),
        ("status", encode_raw(big)),
        ("telemetry", bomb),
        ("telemetry", encode_raw(max_time | {"seq": 2**63 - 2})),
    ):
        item = classify(delivery(f"fl/v1/t/d/{kind}", payload), NOW, RULES)
        assert isinstance(item, DeadLetter), item
        assert item.reason


def test_an_empty_batch_needs_no_partition_whatever_its_base_time():
    payload = encode_raw({"device_id": "d", "seq": 1, "base_time_ms": 10**12, "series": []})
    item = classify(delivery("fl/v1/t/d/telemetry", payload), NOW, RULES)
    assert isinstance(item, TelemetryIn) and item.days == set()


def test_where_the_broker_names_the_publisher_only_the_topics_device_may_publish():
    from fleetlink.cloud.ingest.inbound import Refused

    rules = IngestRules(publisher_property="fl-user")
    payload = encode_raw({"device_id": "devA", "online": True, "time_ms": 1_700_000_000_000})
    name = "fl/v1/t/devA/status"
    for publisher in ("devB", None):
        item = classify(Delivery(name, payload, 1, 1, NOW, publisher), NOW, rules)
        assert isinstance(item, Refused) and item.counter == "publisher_mismatch"
    accepted = classify(Delivery(name, payload, 1, 1, NOW, "devA"), NOW, rules)
    assert not isinstance(accepted, Refused | DeadLetter)
    # Without the setting the broker is not trusted to say, and nothing is refused for it.
    plain = classify(Delivery(name, payload, 1, 1, NOW, "devB"), NOW, RULES)
    assert not isinstance(plain, Refused | DeadLetter)
