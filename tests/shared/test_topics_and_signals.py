import obd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlink.shared import signals, topics

segments = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)


@given(segments, segments, st.sampled_from(list(topics.Kind)))
def test_topics_parse_back_to_what_built_them(tenant, device, kind):
    parsed = topics.parse(topics.topic(tenant, device, kind))
    assert (parsed.tenant, parsed.device, parsed.kind) == (tenant, device, kind)


@pytest.mark.parametrize(
    "bad",
    ["fl/v1/t/d", "fl/v2/t/d/telemetry", "fl/v1/t/d/unknown", "fl/v1/t+/d/ack", "x/v1/t/d/ack"],
)
def test_foreign_topics_are_refused(bad):
    with pytest.raises(topics.TopicError):
        topics.parse(bad)


def test_wildcards_cannot_be_ids():
    with pytest.raises(topics.TopicError, match="device id"):
        topics.topic("demo", "#", topics.Kind.TELEMETRY)


def test_shared_subscription_uses_the_ingest_group():
    assert topics.subscription(topics.Kind.TELEMETRY, shared=True) == (
        "$share/ingest/fl/v1/+/+/telemetry"
    )
    assert topics.subscription(topics.Kind.EVENTS, shared=False) == "fl/v1/+/+/events"


def test_catalog_maps_at_least_thirty_obd_pids_to_vss():
    obd_signals = [s for s in signals.all_signals() if s.obd_pid is not None]
    assert len(obd_signals) >= 30
    assert all(s.name.startswith("Vehicle.") for s in signals.all_signals())


def test_catalog_ids_names_and_commands_are_unique():
    all_ = signals.all_signals()
    assert len({s.id for s in all_}) == len(all_)
    assert len({s.name for s in all_}) == len(all_)


def test_every_obd_entry_is_a_python_obd_mode_01_command_with_that_pid():
    for s in signals.all_signals():
        if s.obd_command is None:
            continue
        command = obd.commands[s.obd_command]
        assert command.mode == 1 and command.pid == s.obd_pid == s.id, s


def test_lookups_raise_a_clear_error():
    assert signals.by_name("Vehicle.Speed").id == 0x0D
    assert signals.by_obd_command("RPM").unit == "rpm"
    with pytest.raises(signals.UnknownSignalError, match="id 9999"):
        signals.by_id(9999)
