"""``fleetlink diag``: the technician's view of a vehicle through its OBD adapter.

Reads what the car reports (VIN, supported PIDs, trouble codes with their descriptions,
live values) over the same checked link the agent uses (``fleetlink.edge.link``): every
reply is matched to its request, a silent port is given up on within 10 s naming what was
tried, and ``--json`` prints data only (shapes in docs/guides/technician.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from fleetlink.edge.link.dtcs import Codes, description, read_codes
from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.errors import LinkError
from fleetlink.edge.link.python_obd import obd, route_python_obd_logging
from fleetlink.shared import signals

app = typer.Typer(no_args_is_help=True)

# Everything diag does on a port that does not answer ends within this time.
GIVE_UP_S = 9.0
_REQUEST_TIMEOUT_S = 1.0
_CLEAR_TIMEOUT_S = 5.0

Port = Annotated[
    str,
    typer.Option(
        "--port", "-p", help="Adapter port: /dev/ttyUSB0, a /dev/serial/by-id link, any symlink."
    ),
]
Baudrate = Annotated[
    int | None,
    typer.Option(
        "--baudrate",
        "-b",
        min=1,
        help="Adapter baud rate; omitted: 38400, 9600, 115200, 57600, 19200, 230400 are tried.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON data (and nothing else).")]


class DiagError(RuntimeError):
    """Raised when the adapter or the vehicle cannot be reached or refuses a request."""


@contextmanager
def _connect(port: str, baudrate: int | None) -> Iterator[Elm327Link]:
    route_python_obd_logging()
    link = Elm327Link(port, baudrate=baudrate, timeout_s=_REQUEST_TIMEOUT_S, stall_after_s=3.0)
    try:
        status = link.open(give_up_after_s=GIVE_UP_S)
    except LinkError as exc:
        raise DiagError(str(exc)) from None
    try:
        if status != "vehicle":
            raise DiagError(
                f"the adapter on {port} ({link.identity}) answers but the vehicle does not: "
                "is the ignition on?"
            )
        yield link
        if link.stalled:
            raise DiagError(f"the adapter on {port} stopped answering; the output is incomplete")
    except LinkError as exc:
        raise DiagError(str(exc)) from None
    finally:
        link.close()


def _emit_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2))


def _run(fn: Any) -> None:
    try:
        fn()
    except DiagError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def read_vin(link: Elm327Link) -> str | None:
    """Return the 17-character VIN from the raw mode 09 reply.

    python-obd's own VIN decoder strips leading and trailing '0', '1', '2' and 'x' characters,
    which are legitimate in a VIN, so the raw message bytes are read instead.
    """
    reply = link.request(b"0902")
    if reply.kind != "ok":
        return None
    # after mode, PID and item count; some ECUs pad the VIN with NULs on either side
    raw = bytes(reply.messages[0].data)[3:].strip(b"\x00")[-17:]
    vin = raw.decode("ascii", errors="replace")
    return vin if len(vin) == 17 and vin.isalnum() else None


@app.command("info")
def info(port: Port, baudrate: Baudrate = None, as_json: AsJson = False) -> None:
    """Adapter, baud rate, protocol, battery voltage, VIN and the number of supported PIDs."""

    def run() -> None:
        with _connect(port, baudrate) as link:
            battery = link.query("ELM_VOLTAGE")
            data = {
                "port": port,
                "device": link.device,
                "baudrate": link.baudrate,
                "adapter": link.identity,
                "protocol": {"id": link.protocol_id, "name": link.protocol_name},
                "battery": None if battery.value is None else {"value": battery.value, "unit": "V"},
                "vin": read_vin(link),
                "supported_mode01_pids": sum(
                    1 for c in link.supported if c.mode == 1 and c.pid not in (0, 32, 64, 96)
                ),
            }
        if as_json:
            _emit_json(data)
            return
        typer.echo(f"port: {port} ({data['device']}) at {data['baudrate']} baud")
        typer.echo(f"adapter: {data['adapter']}")
        typer.echo(f"protocol: {link.protocol_name} ({link.protocol_id})")
        typer.echo("battery: " + (f"{battery.value:g} V" if battery.value is not None else "-"))
        typer.echo(f"vin: {data['vin'] or '-'}")
        typer.echo(f"supported mode 01 PIDs: {data['supported_mode01_pids']}")

    _run(run)


def _stored_count(link: Elm327Link) -> tuple[int | None, bool | None]:
    reply = link.request(b"0101")
    if reply.kind != "ok":
        return None, None
    status = obd.commands.STATUS(reply.messages).value
    return int(status.DTC_count), bool(status.MIL)


def _codes(link: Elm327Link, service: bytes, stored_count: int | None) -> Codes:
    reply = link.request(service)
    if reply.kind == "null":
        return Codes([], 0)
    if reply.kind != "ok":
        raise DiagError(
            f"reading trouble codes (service {service.decode()}) on {link.path} failed: "
            f"{reply.detail or reply.kind}"
        )
    return read_codes(reply.messages, link.protocol_id, stored_count)


def _clear(link: Elm327Link) -> None:
    reply = link.request(b"04", timeout_s=_CLEAR_TIMEOUT_S)
    if reply.kind == "ok":
        return
    if reply.kind == "negative":
        raise DiagError(f"the ECU refused to clear the trouble codes ({reply.detail})")
    raise DiagError(
        f"no ECU confirmed clearing the trouble codes (expected 44, got "
        f"{reply.detail or reply.kind}); they may not be cleared"
    )


@app.command("dtc")
def dtc(
    port: Port,
    baudrate: Baudrate = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Clear stored codes after reading them (mode 04).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Clear without asking.")] = False,
    as_json: AsJson = False,
) -> None:
    """Stored and pending trouble codes with descriptions, checked against PID 01 01's count;
    ``--clear`` resets them and exits 1 unless the ECU confirms."""

    def run() -> None:
        error: DiagError | None = None
        with _connect(port, baudrate) as link:
            stored_count, mil = _stored_count(link)
            stored = _codes(link, b"03", stored_count)
            pending = _codes(link, b"07", None)
            cleared: bool | None = None
            if clear:
                if not yes:
                    typer.confirm(
                        "Clear all stored trouble codes and freeze frames?", abort=True, err=True
                    )
                try:
                    _clear(link)
                    cleared = True
                except DiagError as exc:
                    cleared, error = False, exc
        codes = [
            {"code": c, "description": description(c), "status": status}
            for status, found in (("stored", stored), ("pending", pending))
            for c in found.codes
        ]
        warnings = stored.warnings + pending.warnings
        if as_json:
            data: dict[str, Any] = {
                "port": port,
                "mil_on": mil,
                "stored_count_reported": stored_count,
                "codes": codes,
                "warnings": warnings,
                "cleared": cleared,
            }
            if error is not None:
                data["error"] = str(error)
            _emit_json(data)
        else:
            if mil is not None:
                typer.echo(f"MIL: {'on' if mil else 'off'}, {stored_count} stored codes reported")
            for status in ("stored", "pending"):
                listed = [c for c in codes if c["status"] == status]
                typer.echo(f"{status}:" + ("" if listed else " none"))
                for c in listed:
                    typer.echo(f"  {c['code']}  {c['description']}".rstrip())
            for warning in warnings:
                typer.echo(f"warning: {warning}", err=True)
            if cleared:
                typer.echo("cleared: the ECU confirmed (44)")
        if error is not None:
            raise error

    _run(run)


@app.command("live")
def live(port: Port, baudrate: Baudrate = None, as_json: AsJson = False) -> None:
    """One reading of every catalog signal the vehicle supports, with units."""

    def run() -> None:
        readings = []
        with _connect(port, baudrate) as link:
            for signal in signals.all_signals():
                if signal.obd_command is None or not link.supports(signal.obd_command):
                    continue
                reading = link.query(signal.obd_command)
                if reading.value is not None:
                    readings.append(
                        {
                            "name": signal.name,
                            "command": signal.obd_command,
                            "value": reading.value,
                            "unit": signal.unit,
                        }
                    )
        if as_json:
            _emit_json({"port": port, "signals": readings})
            return
        for r in readings:
            typer.echo(f"{r['name']}: {r['value']:g} {r['unit']}")

    _run(run)
