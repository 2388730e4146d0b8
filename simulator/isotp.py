"""ISO 15765-2 (ISO-TP): one reply cut into 8-byte CAN frames, and how an ELM327 prints them."""

from __future__ import annotations

from dataclasses import dataclass

PAD_BYTE = 0x00
_SINGLE_FRAME_MAX = 7
_FIRST_FRAME_DATA = 6
_CONSECUTIVE_FRAME_DATA = 7
_MAX_PAYLOAD = 0xFFF


class PayloadTooLongError(ValueError):
    """Raised when a payload exceeds the 4095 bytes a 12-bit ISO-TP length can carry."""


@dataclass(frozen=True, slots=True)
class Segmented:
    """One payload cut into CAN frames: ``frames`` are the 8 data bytes each, padded."""

    payload: bytes
    frames: tuple[bytes, ...]

    @property
    def is_multi_frame(self) -> bool:
        """Return True when the payload needed a first frame and consecutive frames."""
        return len(self.frames) > 1


def segment(payload: bytes) -> Segmented:
    """Return ``payload`` as a single frame (up to 7 bytes) or a first frame and consecutive frames.

    Raises PayloadTooLongError above 4095 bytes and ValueError for an empty payload.
    """
    if not payload:
        raise ValueError("an ISO-TP payload cannot be empty")
    if len(payload) > _MAX_PAYLOAD:
        raise PayloadTooLongError(f"{len(payload)} bytes exceed the ISO-TP limit of 4095")
    if len(payload) <= _SINGLE_FRAME_MAX:
        return Segmented(payload, (_pad(bytes((len(payload),)) + payload),))
    frames = [bytes((0x10 | len(payload) >> 8, len(payload) & 0xFF)) + payload[:_FIRST_FRAME_DATA]]
    rest = payload[_FIRST_FRAME_DATA:]
    seq = 1
    while rest:
        chunk, rest = rest[:_CONSECUTIVE_FRAME_DATA], rest[_CONSECUTIVE_FRAME_DATA:]
        frames.append(_pad(bytes((0x20 | seq & 0x0F,)) + chunk))
        seq += 1
    return Segmented(payload, tuple(frames))


def _pad(frame: bytes) -> bytes:
    return frame + bytes((PAD_BYTE,)) * (8 - len(frame))


def _hex(data: bytes, spaces: bool) -> str:
    return (" " if spaces else "").join(f"{b:02X}" for b in data)


def elm_lines(
    segmented: Segmented, *, can_id: int, headers: bool, spaces: bool, extended: bool = False
) -> list[str]:
    """Return the lines an ELM327 (CAN auto-formatting on) prints for these frames.

    With headers on, each frame is the id (11-bit, or with ``extended`` the 29-bit id as four
    bytes) followed by all 8 data bytes, PCI byte included. With headers off a single frame
    shows only its payload; a multi-frame reply starts with the payload length in three hex
    digits, then one ``n:`` line per frame (the frame's sequence digit) without PCI bytes.
    """
    sep = " " if spaces else ""
    if headers:
        name = _hex(can_id.to_bytes(4, "big"), spaces) if extended else f"{can_id:03X}"
        return [f"{name}{sep}{_hex(f, spaces)}" for f in segmented.frames]
    if not segmented.is_multi_frame:
        return [_hex(segmented.payload, spaces)]
    lines = [f"{len(segmented.payload):03X}"]
    for index, frame in enumerate(segmented.frames):
        data = frame[2:] if index == 0 else frame[1:]
        lines.append(f"{index & 0x0F:X}:{sep}{_hex(data, spaces)}")
    return lines
