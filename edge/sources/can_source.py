"""The CAN source: listens to the vehicle's bus through python-can and decodes with cantools.

The firmware profile names the DBC files and which signals to keep under which catalog
(VSS) names; each kept signal is downsampled (``interval_ms``, ``on_change``,
``deadband``) before it reaches the outbox, so a 100 Hz message becomes a few samples a
second. Frames whose id no DBC describes are ignored and counted; frames that do not decode
and garbled adapter lines are counted and logged once per change of state, never fatal.
The bus state (``traffic`` / ``silent`` / ``disconnected``) tells whether the vehicle is
awake: a silent bus means the ignition is off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import can
from can.util import channel2int
from cantools.database import Message

from fleetlink.edge.config import CanSection
from fleetlink.edge.sources.base import AdapterState, Sample, Source
from fleetlink.edge.sources.slcan_bus import ChunkedSlcanBus
from fleetlink.firmware_profiles import load_can_profile
from fleetlink.firmware_profiles.can import LoadedCan, SignalRule
from fleetlink.shared.messages import CanStatus

log = logging.getLogger(__name__)

BusState = Literal["traffic", "silent", "disconnected", "unknown"]
_RECV_TIMEOUT_S = 0.2
_GARBLE_QUIET_S = 10.0

__all__ = ["BusState", "CanSource", "open_bus"]

_ADAPTER_STATE: dict[BusState, AdapterState] = {
    "traffic": "connected",
    "silent": "no_vehicle",
    "disconnected": "disconnected",
    "unknown": "unknown",
}
_MESSAGES: dict[BusState, str] = {
    "traffic": "CAN bus on %s: traffic",
    "silent": "CAN bus on %s is silent (ignition off?)",
    "disconnected": "CAN interface %s is not reachable; retrying with backoff",
    "unknown": "CAN bus on %s: state unknown",
}


def open_bus(interface: str, channel: str, bitrate: int) -> can.BusABC:
    """Return an open python-can bus (SLCAN through :class:`ChunkedSlcanBus`).

    Raises:
        can.CanError: the interface cannot be opened (no such port, no such device).
    """
    if interface == "slcan":
        return ChunkedSlcanBus(channel, bitrate=bitrate)
    kwargs: dict[str, Any] = {}
    if interface != "virtual":
        kwargs["bitrate"] = bitrate
    return can.Bus(interface=interface, channel=channel, **kwargs)


@dataclass
class _Kept:
    """The downsampling state of one signal rule."""

    rule: SignalRule
    last_ms: int = -(10**15)
    last_value: float | None = None

    def take(self, value: float, now_ms: int) -> bool:
        rule = self.rule
        if now_ms - self.last_ms < rule.interval_ms:
            return False
        if rule.on_change and self.last_value is not None:
            change = abs(value - self.last_value)
            if change <= rule.deadband if rule.deadband else change == 0:
                return False
        self.last_ms, self.last_value = now_ms, value
        return True


@dataclass
class _Decoder:
    message: Message
    kept: list[_Kept]
    failing: bool = False


@dataclass
class _Lookup:
    """DBC messages by frame id (J1939: by parameter group number)."""

    j1939: bool
    by_key: dict[int, _Decoder] = field(default_factory=dict)
    known_keys: set[int] = field(default_factory=set)

    def key(self, frame_id: int, extended: bool) -> int:
        if self.j1939 and extended:
            pgn = (frame_id >> 8) & 0x3FFFF
            if (pgn >> 8) & 0xFF < 240:  # PDU1: the low byte is a destination address
                pgn &= 0x3FF00
            return pgn | 1 << 31
        return frame_id | (1 << 30 if extended else 0)


def _lookup(loaded: LoadedCan) -> _Lookup:
    lookup = _Lookup(loaded.settings.j1939)
    for message in loaded.database.messages:
        key = lookup.key(message.frame_id, message.is_extended_frame)
        lookup.known_keys.add(key)
        rules = loaded.rules.get(message.name)
        if rules:
            lookup.by_key[key] = _Decoder(message, [_Kept(rule) for rule in rules])
    return lookup


class CanSource(Source):
    """Reads the profile's CAN signals from a python-can bus in its own thread.

    ``counters``: ``frames``, ``unknown_id_frames`` (ids no DBC describes),
    ``decode_errors``, ``garbled_lines`` (lines the adapter interface could not parse),
    ``transform_errors``, ``samples``, ``connect_attempts``, ``connects``, ``link_lost``,
    ``frames_recorded`` and ``record_errors`` (a recording that fails stops; decoding goes
    on). ``bus_state`` is ``traffic`` while frames arrive and ``silent`` once none came for
    ``silent_after_s``.
    """

    name = "can"

    def __init__(
        self,
        settings: CanSection,
        loaded: LoadedCan | None = None,
        connect: Callable[[str, str, int], can.BusABC] = open_bus,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.loaded = loaded or load_can_profile(settings.profile)
        profile = self.loaded.settings
        self.interface = settings.interface or profile.interface
        self.channel = settings.channel or profile.channel
        self.bitrate = settings.bitrate or profile.bitrate
        self._connect = connect
        self._lookup = _lookup(self.loaded)
        self._bus_state: BusState = "unknown"
        self._last_frame_at = 0.0
        self._garbled_at: float | None = None
        self._unknown_ids: set[int] = set()
        self._ids_seen: set[int] = set()
        self._frame_seen_at: float | None = None
        number = channel2int(self.channel)
        self._record_channel = number if number is not None and 0 <= number <= 255 else 0

    @property
    def bus_state(self) -> BusState:
        """Return ``traffic``, ``silent``, ``disconnected`` or ``unknown``."""
        return self._bus_state

    def can_status(self) -> CanStatus:
        """Return the bus state and counters for the agent's status message."""
        c = self.counters
        return CanStatus(
            bus=self._bus_state,
            frames=c["frames"],
            unknown_id_frames=c["unknown_id_frames"],
            decode_errors=c["decode_errors"],
            garbled_lines=c["garbled_lines"],
        )

    def can_ids_seen(self) -> frozenset[int]:
        """Return every CAN id seen since the source started (the vehicle's capability record)."""
        return frozenset(self._ids_seen)

    def seconds_since_can_frame(self) -> float | None:
        """Return the seconds since the last frame, None before the first (ignition-off
        detection by the OBD source)."""
        seen = self._frame_seen_at
        return None if seen is None else time.monotonic() - seen

    def _set_bus_state(self, state: BusState, reason: str = "") -> None:
        if state == self._bus_state:
            return
        previous, self._bus_state, self._state = self._bus_state, state, _ADAPTER_STATE[state]
        level = logging.INFO if state != "disconnected" else logging.WARNING
        message = _MESSAGES[state] + (f" ({reason})" if reason else "")
        log.log(level, message, self.channel, extra={"previous": previous})

    def _run(self) -> None:
        delay_s = self.settings.reconnect_min_s
        while not self.stopping.is_set():
            self.counters["connect_attempts"] += 1
            try:
                bus = self._connect(self.interface, self.channel, self.bitrate)
            except (can.CanError, OSError, ValueError) as exc:
                self._set_bus_state("disconnected", str(exc))
                self.stopping.wait(delay_s)
                delay_s = min(delay_s * 2, self.settings.reconnect_max_s)
                continue
            self.counters["connects"] += 1
            delay_s = self.settings.reconnect_min_s
            recorder = self._recorder()
            self._last_frame_at = time.monotonic()
            try:
                self._listen(bus, recorder)
            except (can.CanError, OSError) as exc:
                self.counters["link_lost"] += 1
                self._set_bus_state("disconnected", str(exc))
            except Exception:
                self.counters["listen_errors"] += 1
                log.exception("reading the CAN bus on %s failed; reopening it", self.channel)
                self._set_bus_state("disconnected", "reader failed")
            finally:
                if recorder is not None:
                    recorder.stop()
                try:
                    bus.shutdown()
                except (can.CanError, OSError) as exc:
                    log.debug("closing the CAN interface failed: %s", exc)
            if not self.stopping.is_set() and self._bus_state == "disconnected":
                self.stopping.wait(delay_s)

    def _recorder(self) -> can.Listener | None:
        if self.settings.record is None:
            return None
        try:
            self.settings.record.parent.mkdir(parents=True, exist_ok=True)
            recorder: can.Listener = can.Logger(self.settings.record)
        except (OSError, ValueError) as exc:
            self.counters["record_errors"] += 1
            log.error("cannot record CAN frames to %s: %s", self.settings.record, exc)
            return None
        log.info("recording CAN frames to %s", self.settings.record)
        return recorder

    def _listen(self, bus: can.BusABC, recorder: can.Listener | None) -> None:
        silent_after_s = self.settings.silent_after_s
        while not self.stopping.is_set():
            try:
                frame = bus.recv(timeout=_RECV_TIMEOUT_S)
            except (ValueError, IndexError, UnicodeDecodeError):
                self._garbled()
                continue
            now = time.monotonic()
            if frame is None:
                if now - self._last_frame_at >= silent_after_s:
                    self._set_bus_state("silent", f"no frame for {silent_after_s:g} s")
                continue
            self._last_frame_at = self._frame_seen_at = now
            self._ids_seen.add(frame.arbitration_id)
            if self._bus_state != "traffic":
                self._set_bus_state("traffic")
            if self._garbled_at is not None and now - self._garbled_at > _GARBLE_QUIET_S:
                self._garbled_at = None
                log.info("CAN adapter on %s: lines parse again", self.channel)
            self.counters["frames"] += 1
            if recorder is not None:
                recorder = self._record(recorder, frame)
            self._decode(frame)

    def _record(self, recorder: can.Listener, frame: can.Message) -> can.Listener | None:
        """Write ``frame`` to the recording; on failure stop recording (decoding goes on)."""
        # Log formats number channels (BLF: 0-65535); a name like "/dev/ttyACM0" is not one.
        frame.channel = self._record_channel
        try:
            recorder.on_message_received(frame)
        except Exception as exc:
            self.counters["record_errors"] += 1
            log.error(
                "recording CAN frames to %s failed (%s); recording stops", self.settings.record, exc
            )
            return None
        self.counters["frames_recorded"] += 1
        return recorder

    def _garbled(self) -> None:
        self.counters["garbled_lines"] += 1
        if self._garbled_at is None:
            log.warning(
                "CAN adapter on %s sends lines that do not parse; counting them", self.channel
            )
        self._garbled_at = time.monotonic()

    def _decode(self, frame: can.Message) -> None:
        lookup = self._lookup
        key = lookup.key(frame.arbitration_id, frame.is_extended_id)
        decoder = lookup.by_key.get(key)
        if decoder is None:
            if key not in lookup.known_keys:
                self._unknown(frame.arbitration_id)
            return
        now_ms = int(time.time() * 1000)
        due = [k for k in decoder.kept if now_ms - k.last_ms >= k.rule.interval_ms]
        if not due:
            return
        try:
            values = decoder.message.decode_simple(
                bytes(frame.data), decode_choices=False, allow_truncated=False
            )
        except Exception as exc:  # cantools raises several types for bad data
            self.counters["decode_errors"] += 1
            if not decoder.failing:
                decoder.failing = True
                log.warning(
                    "CAN message %s (0x%X) does not decode: %s; counting",
                    decoder.message.name,
                    frame.arbitration_id,
                    exc,
                )
            return
        if decoder.failing:
            decoder.failing = False
            log.info("CAN message %s decodes again", decoder.message.name)
        for kept in due:
            raw = values.get(kept.rule.signal)
            if not isinstance(raw, int | float):
                continue
            value = float(raw)
            if kept.rule.transform is not None:
                try:
                    value = kept.rule.transform(value, values)  # type: ignore[arg-type]
                except (ArithmeticError, KeyError, ValueError, TypeError):
                    self.counters["transform_errors"] += 1
                    continue
            if kept.take(value, now_ms):
                self.emit(Sample(kept.rule.signal_id, now_ms, value))

    def _unknown(self, frame_id: int) -> None:
        self.counters["unknown_id_frames"] += 1
        if frame_id not in self._unknown_ids and len(self._unknown_ids) < 4096:
            if not self._unknown_ids:
                log.info("CAN frames with ids no DBC describes are ignored and counted")
            self._unknown_ids.add(frame_id)
