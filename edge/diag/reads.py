"""What diag asks the vehicle, each read returning the JSON-ready data its command prints.

Every read goes through the checked link (:class:`Elm327Link`); python-obd decodes values and
the readiness bitmaps, and the raw messages are read where python-obd loses information (the
VIN, codes when the adapter drops the count byte, the freeze frame's frame number).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetlink.edge.diag.dtc_meaning import meaning
from fleetlink.edge.diag.errors import DiagError, ExitCode
from fleetlink.edge.link.dtcs import Codes, dtc_code, read_codes
from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.python_obd import Message, obd
from fleetlink.shared import signals
from fleetlink.shared.vin import VinError, decode_vin

_CLEAR_TIMEOUT_S = 5.0
_BITMAP_PIDS = frozenset({0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0})
_DTC_SERVICES = (("stored", b"03"), ("pending", b"07"), ("permanent", b"0A"))
# Live values in a report, by python-obd command name.
KEY_LIVE_COMMANDS = ("RPM", "SPEED", "COOLANT_TEMP", "ENGINE_LOAD", "CONTROL_MODULE_VOLTAGE")


def _ecu_name(message: Message) -> str:
    ecu = getattr(message, "ecu", 0)
    if ecu == obd.ECU.ENGINE:
        return "engine"
    if ecu == obd.ECU.TRANSMISSION:
        return "transmission"
    return "other"


def ecus(link: Elm327Link) -> list[dict[str, str]]:
    """Return the ECUs that answer a functional PID 00 request: CAN id (or address) and role."""
    reply = link.request(b"0100")
    if reply.kind != "ok":
        return []
    found = {}
    for message in reply.messages:
        raw = message.frames[0].raw.replace(" ", "")
        header = raw[:8] if link.protocol_id in ("7", "9") else raw[:3]
        found[header.upper()] = _ecu_name(message)
    return [{"id": k, "name": v} for k, v in sorted(found.items())]


def vehicle_from_vin(number: str | None) -> dict[str, Any] | None:
    """Return what the VIN tells offline (make, model, model year, country), None if nothing."""
    if number is None:
        return None
    try:
        info = decode_vin(number)
    except VinError:
        return None
    return {
        "wmi": info.wmi,
        "make": info.make,
        "model": info.model,
        "model_year": info.model_year,
        "country": info.country,
    }


def supported_mode01(link: Elm327Link) -> list[int]:
    """Return the data PIDs of mode 01 the vehicle's bitmaps list (bitmap PIDs left out)."""
    return sorted(c.pid for c in link.supported if c.mode == 1 and c.pid not in _BITMAP_PIDS)


def scan(link: Elm327Link) -> dict[str, Any]:
    """Return the adapter, protocol, battery, answering ECUs, VIN and supported PIDs."""
    battery = link.query("ELM_VOLTAGE")
    number = link.read_vin()
    pids = supported_mode01(link)
    return {
        "device": link.device,
        "baudrate": link.baudrate,
        "adapter": {"version": link.identity, "refused_settings": list(link.refused_settings)},
        "protocol": {"id": link.protocol_id, "name": link.protocol_name, "search": "ATSP0"},
        "battery": None if battery.value is None else {"value": battery.value, "unit": "V"},
        "ecus": ecus(link),
        "vin": number,
        "vehicle": vehicle_from_vin(number),
        "supported_pids": [f"{pid:02X}" for pid in pids],
    }


def status(link: Elm327Link) -> Any:
    """Return python-obd's decoded PID 01 01 (MIL, code count, monitors), None if unanswered."""
    reply = link.request(b"0101")
    if reply.kind != "ok":
        return None
    return obd.commands.STATUS(reply.messages).value


def _codes(link: Elm327Link, service: bytes, stored_count: int | None) -> Codes | None:
    reply = link.request(service)
    if reply.kind == "null":
        return Codes([], 0)
    if reply.kind == "negative" and reply.negative_code in (0x11, 0x12):
        return None  # mode 0A is optional before 2010 model years
    if reply.kind != "ok":
        raise DiagError(
            f"reading trouble codes (service {service.decode()}) on {link.path} failed: "
            f"{reply.detail or reply.kind}"
        )
    return read_codes(reply.messages, link.protocol_id, stored_count)


def code_entry(code: str, status_name: str) -> dict[str, str]:
    found = meaning(code)
    return {
        "code": code,
        "status": status_name,
        "description": found.description,
        "system": found.system,
        "range": found.range,
    }


def trouble_codes(link: Elm327Link) -> dict[str, Any]:
    """Return stored (03), pending (07) and permanent (0A) codes with meanings, and the MIL."""
    decoded = status(link)
    stored_count = None if decoded is None else int(decoded.DTC_count)
    codes: list[dict[str, str]] = []
    warnings: list[str] = []
    unsupported: list[str] = []
    for name, service in _DTC_SERVICES:
        found = _codes(link, service, stored_count if name == "stored" else None)
        if found is None:
            unsupported.append(name)
            continue
        codes += [code_entry(c, name) for c in found.codes]
        warnings += found.warnings
    return {
        "mil_on": None if decoded is None else bool(decoded.MIL),
        "stored_count_reported": stored_count,
        "codes": codes,
        "unsupported": unsupported,
        "warnings": warnings,
    }


def clear_codes(link: Elm327Link) -> None:
    """Send mode 04; return when the ECU confirmed (44).

    Raises:
        DiagError: the ECU refused (7F 04 ..) or nobody confirmed.
    """
    reply = link.request(b"04", timeout_s=_CLEAR_TIMEOUT_S)
    if reply.kind == "ok":
        return
    if reply.kind == "negative":
        raise DiagError(f"the ECU refused to clear the trouble codes ({reply.detail})")
    raise DiagError(
        f"no ECU confirmed clearing the trouble codes (expected 44, got "
        f"{reply.detail or reply.kind}); they may not be cleared"
    )


def _as_mode_01(message: Message, pid: int) -> Message:
    """Return a mode 02 message (``42 PID frame data``) as the mode 01 one python-obd decodes."""
    copy = Message(message.frames)
    copy.ecu = message.ecu
    copy.data = bytearray((0x41, pid)) + message.data[3:]
    return copy


def _value(command: Any, messages: Sequence[Message]) -> tuple[float | None, str]:
    value = command(list(messages)).value
    magnitude = getattr(value, "magnitude", value)
    if isinstance(magnitude, int | float) and not isinstance(magnitude, bool):
        unit = f"{value.units:~}" if hasattr(value, "units") else ""
        return float(magnitude), unit
    return None, ""


def signal_name(command_name: str) -> str | None:
    """Return the catalog (VSS) name of the signal python-obd's ``command_name`` feeds."""
    try:
        return signals.by_obd_command(command_name).name
    except KeyError:
        return None


def unit_of(command_name: str, decoded_unit: str) -> str:
    """Return the catalog's unit for the command's signal (as in the cloud's API), else the
    unit python-obd decoded."""
    try:
        return signals.by_obd_command(command_name).unit
    except KeyError:
        return decoded_unit


def freeze_frame(link: Elm327Link) -> dict[str, Any]:
    """Return the code that stored freeze frame 0 and the frame's values.

    Raises:
        DiagError(UNSUPPORTED): the ECU answers no mode 02 request.
    """
    reply = link.request(b"020200")
    if reply.kind in ("negative", "null", "silent"):
        raise DiagError(
            f"the vehicle answers no freeze frame request (mode 02): {reply.detail or reply.kind}",
            ExitCode.UNSUPPORTED,
        )
    code = None
    if reply.kind == "ok":
        data = bytes(reply.messages[0].data)
        if len(data) >= 5 and data[3:5] != b"\0\0":
            code = dtc_code(data[3], data[4])
    bitmap = link.request(b"020000")
    pids: list[int] = []
    if bitmap.kind == "ok":
        bits = int.from_bytes(bytes(bitmap.messages[0].data)[3:7], "big")
        pids = [i for i in range(1, 0x21) if bits & (1 << (32 - i)) and i not in (0x02, 0x20)]
    values = []
    if code is not None:
        for pid in pids:
            if not obd.commands.has_pid(1, pid):
                continue
            answer = link.request(f"02{pid:02X}00".encode())
            if answer.kind != "ok":
                continue
            command = obd.commands[1][pid]
            value, unit = _value(command, [_as_mode_01(answer.messages[0], pid)])
            if value is None:
                continue
            values.append(
                {
                    "pid": f"{pid:02X}",
                    "name": command.name,
                    "description": command.desc,
                    "value": value,
                    "unit": unit_of(command.name, unit),
                }
            )
    return {"dtc": None if code is None else code_entry(code, "stored"), "values": values}


def _monitors(decoded: Any) -> list[dict[str, str]]:
    compression = str(getattr(decoded, "ignition_type", "")).lower() == "compression"
    names = obd.codes.BASE_TESTS + (
        obd.codes.COMPRESSION_TESTS if compression else obd.codes.SPARK_TESTS
    )
    result = []
    for name in names:
        if name is None:
            continue
        test = getattr(decoded, name)
        state = (
            "not supported" if not test.available else "complete" if test.complete else "incomplete"
        )
        result.append({"name": name.removesuffix("_MONITORING").lower(), "status": state})
    return result


def monitors(link: Elm327Link) -> dict[str, Any]:
    """Return the readiness monitors since the codes were cleared (PID 01) and this drive
    cycle (PID 41, None when the vehicle does not support it).

    Raises:
        DiagError(UNSUPPORTED): the vehicle does not answer PID 01 01.
    """
    decoded = status(link)
    if decoded is None:
        raise DiagError(
            "the vehicle does not answer PID 01 01 (monitor status)", ExitCode.UNSUPPORTED
        )
    this_cycle = None
    if link.supports("STATUS_DRIVE_CYCLE"):
        reply = link.request(b"0141")
        if reply.kind == "ok":
            this_cycle = _monitors(obd.commands.STATUS_DRIVE_CYCLE(reply.messages).value)
    return {
        "ignition": str(decoded.ignition_type).lower() or None,
        "mil_on": bool(decoded.MIL),
        "dtc_count": int(decoded.DTC_count),
        "since_clear": _monitors(decoded),
        "this_cycle": this_cycle,
    }


def pids(link: Elm327Link) -> list[dict[str, Any]]:
    """Return each supported mode 01 PID with its name, one reading's unit and the catalog
    (VSS) name of the signal it feeds, when there is one."""
    result = []
    for pid in supported_mode01(link):
        command = obd.commands[1][pid]
        reading = link.query(command.name)
        result.append(
            {
                "pid": f"{pid:02X}",
                "name": command.name,
                "description": command.desc,
                "unit": unit_of(command.name, reading.unit) or None,
                "signal": signal_name(command.name),
            }
        )
    return result


def resolve_live(link: Elm327Link, wanted: Sequence[str]) -> list[tuple[str, str | None]]:
    """Return (python-obd command, catalog signal name) for each of ``wanted`` (a PID such as
    ``0C`` or ``010C``, a command name such as ``RPM``, or a VSS name), or for every catalog
    signal the vehicle supports when ``wanted`` is empty.

    Raises:
        DiagError(USAGE): a name is none of these; (UNSUPPORTED): the vehicle lacks the PID.
    """
    if not wanted:
        return [
            (s.obd_command, s.name)
            for s in signals.all_signals()
            if s.obd_command is not None and link.supports(s.obd_command)
        ]
    chosen: dict[str, str | None] = {}
    for item in wanted:
        name = _command_for(item)
        if not link.supports(name):
            raise DiagError(f"the vehicle does not support {item} ({name})", ExitCode.UNSUPPORTED)
        chosen[name] = signal_name(name)
    return list(chosen.items())


def _command_for(item: str) -> str:
    text = item.strip()
    hex_text = text.upper().removeprefix("0X")
    if len(hex_text) in (2, 4) and all(c in "0123456789ABCDEF" for c in hex_text):
        pid = int(hex_text[-2:], 16)
        if (len(hex_text) == 2 or hex_text[:2] == "01") and obd.commands.has_pid(1, pid):
            return str(obd.commands[1][pid].name)
    if obd.commands.has_name(text.upper()) and obd.commands[text.upper()].mode == 1:
        return text.upper()
    try:
        command = signals.by_name(text).obd_command
    except KeyError:
        command = None
    if command:
        return command
    raise DiagError(
        f"{item!r} is not a mode 01 PID (0C, 010C), a command name (RPM) or a catalog signal "
        "(Vehicle.Speed); see fleetlink diag pids",
        ExitCode.USAGE,
    )
