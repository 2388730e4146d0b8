"""Manufacturer PIDs (mode 22, ReadDataByIdentifier) on their own ECUs, decoded with OBDb.

Each OBDb command names the ECU it is sent to (``hdr``) and the one that answers (``rax``).
:class:`Mode22Reader` points the adapter at a command's ECU only when it is not already
pointed there: ``ATSH`` (the request id) and ``ATCRA`` (print only the answering ECU's frames);
a 29-bit header (``DA1A``: 18 DA 1A F1) also needs the 29-bit twin of the vehicle's CAN protocol
(``ATSP7`` for 6, ``ATSP9`` for 8) and the priority byte (``ATCP18``). The ELM327 sends the
ISO-TP flow control to the request id by itself, so ``ATFCSH`` is not needed for these
request/answer pairs. :meth:`Mode22Reader.restore` points the adapter back at the broadcast
id for mode 01.

The reply is read with headers on and decoded by
:func:`~fleetlink.firmware_profiles.obdb.decode.decode_reply` (single and multi-frame). As
python-obd's fast mode does, the number of frames a DID's first answer took is appended to its
later requests (``2243AF1``), so the adapter stops listening once they came instead of waiting
out its timeout; an adapter that answers ``?`` to that is never asked so again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.replies import STATUS_MESSAGES
from fleetlink.firmware_profiles.obdb.decode import decode_reply
from fleetlink.firmware_profiles.obdb.signalset import Command, VehicleSignals

log = logging.getLogger(__name__)

Mode22Kind = Literal["ok", "no_data", "negative", "silent", "refused", "garbled"]
BROADCAST_ID = b"7DF"
PRIORITY_29 = b"18"
TESTER = b"F1"
_TWIN_29 = {"6": "7", "8": "9"}


@dataclass(frozen=True)
class Mode22Reply:
    """What one mode 22 request gave: its values by OBDb signal id (``kind`` ``ok``), or why
    none (``no_data``: the ECU did not answer; ``negative``: it refused the DID; ``silent``:
    the adapter did not answer in time; ``refused``: the adapter refused the header set-up;
    ``garbled``: nothing in the reply answered the request)."""

    kind: Mode22Kind
    values: dict[str, float | str | None] = field(default_factory=dict)
    detail: str = ""


def ecu_of(command: Command) -> str:
    """Return the key of the ECU ``command`` talks to (its header and receive address)."""
    return f"{command.header}>{command.reply_from}"


class Mode22Reader:
    """Reads OBDb mode 22 commands over ``link``, switching headers only when they change.

    ``counters`` (the link's) gains ``ecu_selections`` (times the adapter was pointed at
    another ECU), ``header_switches`` (the AT commands that took) and ``header_refused``.
    """

    def __init__(self, link: Elm327Link) -> None:
        self.link = link
        self.counters = link.counters
        self.base_protocol = link.protocol_id or "6"
        self._ecu: str | None = None
        self._protocol = self.base_protocol
        self._priority_set = False
        self._frames: dict[str, int] = {}
        # False once the adapter refused ATCRA (then never asked again on this link)
        self.receive_filter = True

    @property
    def pointed_at(self) -> str | None:
        """Return the ECU key the adapter is pointed at (None: the broadcast id, as at open)."""
        return self._ecu

    def _at(self, command: bytes) -> bool:
        self.counters["header_switches"] += 1
        ok = self.link.at(command).kind == "ok"
        if not ok:
            self.counters["header_refused"] += 1
        return ok

    def _protocol_for(self, extended: bool) -> bool:
        wanted = _TWIN_29.get(self.base_protocol, self.base_protocol) if extended else None
        wanted = wanted or self.base_protocol
        if wanted == self._protocol:
            return True
        if not self._at(b"ATSP" + wanted.encode()):
            return False
        self._protocol = wanted
        return True

    def select(self, command: Command) -> bool:
        """Point the adapter at ``command``'s ECU unless it already is; return False when the
        adapter refused (the command cannot be read now).

        Raises:
            LinkLostError: the port went away.
        """
        ecu = ecu_of(command)
        if ecu == self._ecu:
            return True
        self.counters["ecu_selections"] += 1
        self._ecu = None
        extended = len(command.header) == 4
        if not self._protocol_for(extended):
            return False
        if extended and not self._priority_set:
            if not self._at(b"ATCP" + PRIORITY_29):
                return False
            self._priority_set = True
        header = command.header.encode() + (TESTER if extended else b"")
        if not self._at(b"ATSH" + header):
            return False
        if self.receive_filter and not self._at(b"ATCRA" + command.reply_from.encode()):
            # an adapter without ATCRA prints every ECU's frames; the decoder keeps the
            # command's own (its reply id), so the request can still be read
            self.receive_filter = False
            log.warning(
                "the adapter refused ATCRA; mode 22 replies are filtered by their CAN id instead"
            )
        self._ecu = ecu
        return True

    def restore(self) -> bool:
        """Point the adapter back at the broadcast id on the vehicle's protocol (for mode 01);
        return False when it refused.

        Raises:
            LinkLostError: the port went away.
        """
        if self._ecu is None and self._protocol == self.base_protocol:
            return True
        self._ecu = None
        if not self._protocol_for(False):
            return False
        if not self._at(b"ATSH" + BROADCAST_ID):
            return False
        return not self.receive_filter or self._at(b"ATAR")

    def read(self, command: Command) -> Mode22Reply:
        """Send ``command`` to its ECU and decode the reply with its signals.

        Raises:
            LinkLostError: the port went away.
        """
        if not self.select(command):
            return Mode22Reply("refused", detail=f"adapter refused the header of {ecu_of(command)}")
        request = command.request().encode()
        key = f"{ecu_of(command)}:{command.request()}"
        frames = self._frames.get(key) if self.link.response_counts else None
        sent = request + (b"%X" % frames if frames else b"")
        lines = self.link.request_lines(sent)
        if frames and [ln.strip() for ln in lines] == ["?"]:
            self.link.response_counts = False
            self.counters["response_counts_refused"] += 1
            sent = request
            lines = self.link.request_lines(sent)
        if not lines:
            return Mode22Reply("silent")
        kept = [ln for ln in lines if "".join(ln.split()).upper() != sent.decode()]
        said = [ln.strip().upper() for ln in kept if ln.strip().upper() in STATUS_MESSAGES]
        if said:
            return Mode22Reply("no_data", detail=said[0])
        if [ln.strip() for ln in kept] == ["?"]:
            return Mode22Reply("refused", detail=f"adapter answered ? to {request.decode()}")
        decoded = decode_reply(VehicleSignals((command,)), "\n".join(kept))
        counts = decoded.stats.counts
        for name, count in counts.items():
            if count:
                self.counters[f"mode22_{name}"] += count
        if decoded.values:
            if not counts.get("unknown_reply"):
                self._frames[key] = min(len(kept), 15)
            return Mode22Reply("ok", decoded.values)
        if counts.get("negative_response"):
            return Mode22Reply("negative", detail=" | ".join(kept)[:40])
        if counts.get("unknown_reply"):
            self.link.mark_out_of_step()
        return Mode22Reply("garbled", detail=" | ".join(kept)[:80])
