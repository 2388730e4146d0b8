"""Virtual devices of the fleet load generator: each one an agent's sync state, no hardware.

A ``VirtualDevice`` keeps what the real agent keeps for the wire: its next seq, an outbox of
published and not yet acked batches (resent after ``resend_s``), and the high-water mark the
cloud answered to its hello. Batches are real ``TelemetryBatch`` messages (``signals``
signals, ``samples_per_signal`` samples each) encoded with the contract's codec.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Ack, Hello, Series, TelemetryBatch
from fleetlink.shared.signals import BY_ID
from fleetlink.shared.topics import Kind, topic

# The catalog's first signals; a fleet batch carries ``signals`` of them.
SIGNAL_IDS = tuple(sorted(BY_ID))


@dataclass(slots=True)
class Pending:
    """One published batch waiting for its ack."""

    payload: bytes
    first_sent: float
    last_sent: float


@dataclass(slots=True)
class VirtualDevice:
    """One device's wire state; ``ready`` once the cloud answered its hello."""

    tenant: str
    device_id: str
    signals: int = 20
    samples_per_signal: int = 1
    next_seq: int = 1
    nonce: str = ""
    ready: bool = False
    outbox: dict[int, Pending] = field(default_factory=dict)

    @property
    def telemetry_topic(self) -> str:
        return topic(self.tenant, self.device_id, Kind.TELEMETRY)

    @property
    def ack_topic(self) -> str:
        return topic(self.tenant, self.device_id, Kind.ACK)

    def hello(self) -> tuple[str, bytes]:
        """Return the topic and payload of a hello with a fresh nonce."""
        self.nonce = f"{random.getrandbits(64):016x}"
        message = Hello(device_id=self.device_id, nonce=self.nonce, next_seq=self.next_seq)
        return topic(self.tenant, self.device_id, Kind.HELLO), encode(message)

    def next_batch(self, now_ms: int, now: float) -> tuple[int, bytes]:
        """Return the seq and payload of the next batch, already held in the outbox."""
        seq = self.next_seq
        self.next_seq += 1
        offsets = [i * 1000 for i in range(self.samples_per_signal)]
        batch = TelemetryBatch(
            device_id=self.device_id,
            seq=seq,
            base_time_ms=now_ms - offsets[-1],
            series=[
                Series(
                    signal_id=sid,
                    offsets_ms=offsets,
                    values=[round(random.uniform(0, 100), 2) for _ in offsets],
                )
                for sid in SIGNAL_IDS[: self.signals]
            ],
        )
        payload = encode(batch)
        self.outbox[seq] = Pending(payload, now, now)
        return seq, payload

    def on_ack(self, ack: Ack, now: float) -> list[float]:
        """Apply an ack; return the latencies (s since first publish) of the batches it freed.

        A hello's answer (its nonce) sets the next seq above the cloud's high-water mark.
        """
        if ack.nonce and ack.nonce == self.nonce:
            self.next_seq = max(self.next_seq, ack.high_water + 1)
            self.ready = True
        latencies = []
        for seq in ack.seqs:
            pending = self.outbox.pop(seq, None)
            if pending is not None:
                latencies.append(now - pending.first_sent)
        return latencies

    def due_resends(self, now: float, resend_s: float) -> list[tuple[int, bytes]]:
        """Return the unacked batches older than ``resend_s``; marks them as sent now."""
        due = []
        for seq, pending in self.outbox.items():
            if now - pending.last_sent >= resend_s:
                pending.last_sent = now
                due.append((seq, pending.payload))
        return due
