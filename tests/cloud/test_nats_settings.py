"""The NATS ingest mode's settings and its topic ↔ subject mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from fleetlink.cloud.ingest.nats_source import NatsPlan, mqtt_to_subject, subject_to_mqtt
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.topics import Kind, topic

SEGMENT = st.from_regex(r"^[A-Za-z0-9_:-]{1,20}$", fullmatch=True)


@given(SEGMENT, SEGMENT, st.sampled_from(list(Kind)))
def test_a_device_topic_maps_to_its_subject_and_back(tenant: str, device: str, kind: Kind) -> None:
    mqtt_topic = topic(tenant, device, kind)
    subject = mqtt_to_subject(mqtt_topic)
    assert "/" not in subject and subject.count(".") == mqtt_topic.count("/")
    assert subject_to_mqtt(subject) == mqtt_topic


def test_the_stream_captures_what_the_ingest_reads_and_not_the_acks_it_sends() -> None:
    subjects = NatsPlan(servers=("nats://127.0.0.1:4222",)).subjects
    assert "fl.v1.*.*.telemetry" in subjects and "fl.v1.*.*.hello" in subjects
    assert not [s for s in subjects if s.endswith((".ack", ".cmd", ".fences"))]


def test_several_nats_servers_are_read_in_order_and_redacted_in_the_log() -> None:
    settings = CloudSettings(
        mode="demo",
        ingest_source="nats",
        nats_url="nats://ingest:Secret-Pw-123@a:4222, nats://b:4222",  # type: ignore[arg-type]
    )
    assert settings.nats_servers() == ["nats://ingest:Secret-Pw-123@a:4222", "nats://b:4222"]
    assert "Secret-Pw-123" not in str(settings.describe())


@pytest.mark.parametrize("url", ["http://a:4222", "nats://", "a:4222"])
def test_a_nats_url_that_is_not_nats_is_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(ValidationError, match="FLEETLINK_NATS_URL"):
        CloudSettings(mode="demo", nats_url=url)  # type: ignore[arg-type]
