"""The MIL and the stored trouble codes, read between polls so that in-cab alerts work on an
OBD-only vehicle: PID 01 01 every ``dtc_interval_s``, and service 03 when it reports codes.

The MIL becomes a ``Vehicle.OBD.Status.IsMILOn`` sample; a code that was not stored at the
previous read becomes a ``dtc_set`` event. The first read after the agent starts only learns
which codes are stored (they are not new; the MIL sample tells the driver of them).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetlink.edge.link.dtcs import read_codes
from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.python_obd import obd
from fleetlink.shared.signals import by_name

MIL_SIGNAL_ID = by_name("Vehicle.OBD.Status.IsMILOn").id


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """One read: the MIL (None when PID 01 01 went unanswered) and the codes new since the
    previous read."""

    mil_on: bool | None
    new_codes: list[str]


class TroubleCodeWatch:
    """When to read the codes next, and which were stored at the last read."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next: float | None = None
        self._known: set[str] | None = None

    def due(self, now: float) -> bool:
        """Return whether a read is due (the first one ``interval_s`` after the first call;
        never with an interval of 0)."""
        if self.interval_s <= 0:
            return False
        if self._next is None:
            self._next = now + self.interval_s
        return now >= self._next

    def check(self, link: Elm327Link, now: float) -> CodeCheck:
        """Read PID 01 01 and, when it reports stored codes, service 03; return what changed.

        Raises:
            LinkLostError: the port went away.
        """
        self._next = now + self.interval_s
        reply = link.request(b"0101")
        if reply.kind != "ok":
            return CodeCheck(None, [])
        status = obd.commands.STATUS(reply.messages).value
        mil_on, count = bool(status.MIL), int(status.DTC_count)
        codes: set[str] = set()
        if count:
            stored = link.request(b"03")
            if stored.kind != "ok":
                return CodeCheck(mil_on, [])
            codes = set(read_codes(stored.messages, link.protocol_id, count).codes)
        new = [] if self._known is None else sorted(codes - self._known)
        self._known = codes
        return CodeCheck(mil_on, new)
