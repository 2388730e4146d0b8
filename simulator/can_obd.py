"""OBD-II on the CAN bus: the engine ECU answering SAE J1979 requests over ISO-TP.

Requests arrive on 0x7DF (functional) or 0x7E0 (physical) as single frames; answers leave
on 0x7E8. A multi-frame answer sends its first frame, then waits for the tester's flow
control frame on 0x7E0 before the consecutive frames, as ISO 15765-2 requires.
"""

from __future__ import annotations

import can

from fleetlink.simulator import isotp, j1979
from fleetlink.simulator.vehicle import Vehicle, VehicleState

REQUEST_IDS = frozenset({0x7DF, 0x7E0})
RESPONSE_ID = 0x7E8
_FLOW_CONTROL_ID = 0x7E0


def answer(request: bytes, state: VehicleState) -> bytes | None:
    """Return the J1979 answer payload to ``request`` (mode and PIDs), None for no answer."""
    if not request:
        return None
    mode, pids = request[0], request[1:]
    if mode == 0x01 and 1 <= len(pids) <= 6:
        parts = []
        for pid in pids:
            data = j1979.encode_mode_01(pid, state)
            if data is not None:
                parts.append(bytes((pid,)) + data)
        return bytes((0x41,)) + b"".join(parts) if parts else None
    if mode in (0x03, 0x07, 0x0A) and not pids:
        codes = {0x03: state.stored_dtcs, 0x07: state.pending_dtcs, 0x0A: state.permanent_dtcs}
        return j1979.encode_dtc_list(mode, codes[mode])
    if mode == 0x09 and len(pids) == 1:
        data = j1979.encode_mode_09(pids[0], state)
        return None if data is None else bytes((0x49, pids[0])) + data
    return None


class ObdResponder:
    """The engine ECU's diagnostic side: frames in, answer frames out."""

    def __init__(self, vehicle: Vehicle) -> None:
        self.vehicle = vehicle
        self._pending: tuple[bytes, ...] = ()

    def handle(self, frame: can.Message) -> list[can.Message]:
        """Return the frames to send in answer to ``frame`` (often none)."""
        if frame.is_extended_id or frame.arbitration_id not in REQUEST_IDS or not frame.data:
            return []
        pci = frame.data[0] >> 4
        if pci == 0x3:
            if frame.arbitration_id != _FLOW_CONTROL_ID or not self._pending:
                return []
            pending, self._pending = self._pending, ()
            return [self._frame(data) for data in pending]
        state = self.vehicle.snapshot()
        if pci != 0x0 or not state.ignition_on:
            return []
        length = frame.data[0] & 0x0F
        payload = answer(bytes(frame.data[1 : 1 + length]), state)
        if payload is None:
            return []
        segmented = isotp.segment(payload)
        self._pending = segmented.frames[1:]
        return [self._frame(segmented.frames[0])]

    @staticmethod
    def _frame(data: bytes) -> can.Message:
        return can.Message(arbitration_id=RESPONSE_ID, is_extended_id=False, data=data)
