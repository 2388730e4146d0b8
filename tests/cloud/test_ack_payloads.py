"""The ingest builds its acks as the Ack model's wire form directly; these are the model's
bytes exactly, signed or not, and a device verifies them."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlink.cloud.ingest.store import DeviceAcks
from fleetlink.cloud.ingest.worker import ack_payloads
from fleetlink.shared.codec import decode, encode
from fleetlink.shared.messages import MAX_SEQ, Ack
from fleetlink.shared.signing import sign, verify

HEX = "0123456789abcdef"


def model_payloads(acks: DeviceAcks) -> list[bytes]:
    """The same acks made through the model: what the contract says they are."""
    messages: list[Ack] = []
    counter = acks.first_counter
    common = {"device_id": acks.device, "high_water": acks.high_water}
    if acks.seqs:
        messages.append(Ack(**common, seqs=acks.seqs, digests=acks.digests, counter=counter))
        counter += 1
    for nonce in acks.nonces:
        messages.append(Ack(**common, seqs=[], nonce=nonce, counter=counter))
        counter += 1
    if acks.key is not None:
        messages = [sign(acks.key, m) for m in messages]
    return [encode(m) for m in messages]


@st.composite
def device_acks(draw: st.DrawFn) -> DeviceAcks:
    seqs = draw(st.lists(st.integers(1, MAX_SEQ), max_size=60))
    return DeviceAcks(
        tenant="t",
        device=draw(st.text("abc-019", min_size=1, max_size=64)),
        seqs=seqs,
        digests=[draw(st.text(HEX, min_size=16, max_size=16)) for _ in seqs],
        high_water=draw(st.integers(0, MAX_SEQ)),
        nonces=draw(st.lists(st.text(HEX, min_size=16, max_size=64), max_size=2)),
        key=draw(st.none() | st.binary(min_size=32, max_size=32)),
        first_counter=draw(st.integers(0, MAX_SEQ - 3)),
    )


@settings(max_examples=300)
@given(device_acks())
def test_acks_are_the_models_bytes_and_verify_with_the_devices_key(acks: DeviceAcks) -> None:
    payloads = ack_payloads(acks)
    assert payloads == model_payloads(acks)
    assert len(payloads) == (1 if acks.seqs else 0) + len(acks.nonces)
    for payload in payloads:
        ack = decode(payload, Ack)
        assert ack.device_id == acks.device
        if acks.key is not None:
            assert verify(acks.key, ack)
        else:
            assert ack.mac == ""


def test_a_long_ack_is_compressed_as_the_codec_compresses_any_message() -> None:
    seqs = list(range(1, 201))
    acks = DeviceAcks("t", "dev-1", seqs, ["0" * 16] * 200, 200, key=b"k" * 32)
    (payload,) = ack_payloads(acks)
    assert payload[1] & 0b100  # zstd
    assert decode(payload, Ack).seqs == seqs
