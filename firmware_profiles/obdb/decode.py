"""Decode one ELM327 reply (headers on, one CAN frame a line) with a vehicle's OBDb commands.

Frames are reassembled per CAN id (ISO-TP single, first and consecutive frames); replies from
other ECUs or for other requests are skipped. Malformed frames, negative responses, short
payloads and out-of-range raw values are counted in :class:`DecodeStats`, never raised.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fleetlink.firmware_profiles.obdb.signalset import Command, VehicleSignals

NEGATIVE_RESPONSE = 0x7F


@dataclass
class DecodeStats:
    """Counters of what a reply held besides signal values."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, other: DecodeStats) -> None:
        self.counts.update(other.counts)


@dataclass
class Decoded:
    """Signal values by OBDb signal id (``None``: the ECU reported no value) and the counters."""

    values: dict[str, float | str | None] = field(default_factory=dict)
    stats: DecodeStats = field(default_factory=DecodeStats)


def _frames(text: str, stats: DecodeStats) -> list[tuple[str, bytes]]:
    """(CAN id, frame data) for each parseable line; other lines are counted as malformed."""
    frames: list[tuple[str, bytes]] = []
    for line in text.splitlines():
        line = "".join(line.split()).upper()
        if not line:
            continue
        id_len = 8 if len(line) >= 10 and line.startswith(("18DA", "18DB")) else 3
        can_id, hex_data = line[:id_len], line[id_len:]
        try:
            int(can_id, 16)
            data = bytes.fromhex(hex_data)
        except ValueError:
            stats.counts["malformed_frame"] += 1
            continue
        if not data:
            stats.counts["malformed_frame"] += 1
            continue
        frames.append((can_id, data))
    return frames


def _messages(frames: list[tuple[str, bytes]], stats: DecodeStats) -> list[tuple[str, bytes]]:
    """ISO-TP reassembly: complete messages in the order they completed."""
    messages: list[tuple[str, bytes]] = []
    partial: dict[str, tuple[bytearray, int, int]] = {}
    for can_id, data in frames:
        kind = data[0] >> 4
        if kind == 0:
            size = data[0] & 0x0F
            if size == 0 or size > len(data) - 1:
                stats.counts["wrong_length"] += 1
                continue
            messages.append((can_id, data[1 : 1 + size]))
        elif kind == 1 and len(data) >= 2:
            size = ((data[0] & 0x0F) << 8) | data[1]
            partial[can_id] = (bytearray(data[2:]), size, 1)
        elif kind == 2:
            if can_id not in partial:
                stats.counts["orphan_frame"] += 1
                continue
            buffer, size, expected = partial[can_id]
            if data[0] & 0x0F != expected & 0x0F:
                stats.counts["sequence_error"] += 1
                del partial[can_id]
                continue
            buffer.extend(data[1:])
            if len(buffer) >= size:
                messages.append((can_id, bytes(buffer[:size])))
                del partial[can_id]
            else:
                partial[can_id] = (buffer, size, expected + 1)
        elif kind == 3:
            continue
        else:
            stats.counts["malformed_frame"] += 1
    stats.counts["incomplete_message"] += len(partial)
    return messages


def _answers(command: Command, can_id: str) -> bool:
    """A command without a receive address (``rax``) takes the reply of any ECU."""
    if command.receive is None:
        return True
    return command.reply_from == can_id


def decode_reply(vehicle: VehicleSignals, text: str) -> Decoded:
    """Decode every signal the reply carries for ``vehicle``'s commands.

    Within one message the most specific command's signal wins; across messages (several ECUs
    answering a broadcast) the last message wins, as the ELM327 printed them.
    """
    out = Decoded()
    stats = out.stats
    for can_id, message in _messages(_frames(text, stats), stats):
        if message[0] == NEGATIVE_RESPONSE:
            stats.counts["negative_response"] += 1
            continue
        service = message[0] - 0x40
        matched = False
        this_message: set[str] = set()
        for command in vehicle.commands:
            if command.service != service or not _answers(command, can_id):
                continue
            width = command.pid_bytes
            if len(message) < 1 + width:
                continue
            if int.from_bytes(message[1 : 1 + width], "big") != command.pid:
                continue
            matched = True
            payload = message[1 + width :]
            for signal in command.signals:
                if signal.id in this_message:
                    continue
                this_message.add(signal.id)
                raw = signal.raw(payload)
                if raw is None:
                    stats.counts["wrong_length"] += 1
                    continue
                value, in_range = signal.scale(raw)
                if not in_range:
                    stats.counts["out_of_range"] += 1
                out.values[signal.id] = value
        if not matched:
            stats.counts["unknown_reply"] += 1
    return out
