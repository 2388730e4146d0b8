"""``fleetlink diag``: the technician's view of a vehicle through its OBD adapter.

Reads what the car reports (VIN, supported PIDs, trouble codes with their
descriptions, live values) with python-obd, directly on the adapter's port.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import obd
import typer

from fleetlink.shared import signals

app = typer.Typer(no_args_is_help=True)

PortOption = typer.Option(..., "--port", "-p", help="Serial port of the OBD adapter.")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of text.")


class DiagError(RuntimeError):
    """Raised when the adapter or the vehicle cannot be reached."""


@contextmanager
def _connect(port: str, timeout_s: float = 2.0) -> Iterator[obd.OBD]:
    logging.getLogger("obd").setLevel(logging.CRITICAL)
    connection = obd.OBD(port, fast=False, timeout=timeout_s)
    try:
        status = connection.status()
        if status == obd.OBDStatus.NOT_CONNECTED:
            raise DiagError(f"no ELM327 adapter answers on {port}: check the port and the cable")
        if status != obd.OBDStatus.CAR_CONNECTED:
            raise DiagError(
                f"the adapter on {port} answers but the vehicle does not: is the ignition on?"
            )
        yield connection
    finally:
        connection.close()


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        if isinstance(value, list):
            typer.echo(f"{key}:")
            for item in value:
                typer.echo(f"  {item}")
        else:
            typer.echo(f"{key}: {value}")


def _run(fn: Any) -> None:
    try:
        fn()
    except DiagError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _vin(response: obd.OBDResponse) -> str | None:
    """Return the 17-character VIN from the raw mode 09 reply.

    python-obd's own VIN decoder strips leading and trailing '0', '1', '2' and 'x' characters,
    which are legitimate in a VIN, so the raw message bytes are read instead.
    """
    if response.is_null() or not response.messages:
        return None
    # after mode, PID and item count; some ECUs pad the VIN with NULs on either side
    raw = bytes(response.messages[0].data)[3:].strip(b"\x00")[-17:]
    vin = raw.decode("ascii", errors="replace")
    return vin if len(vin) == 17 and vin.isalnum() else None


def _value(response: obd.OBDResponse) -> Any:
    value = response.value
    return getattr(value, "magnitude", value)


@app.command("info")
def info(port: str = PortOption, as_json: bool = JsonOption) -> None:
    """Protocol, battery voltage, VIN and the number of supported PIDs."""

    def run() -> None:
        with _connect(port) as car:
            _emit(
                {
                    "port": port,
                    "protocol": car.protocol_name(),
                    "battery_v": _value(car.query(obd.commands.ELM_VOLTAGE)),
                    "vin": _vin(car.query(obd.commands.VIN)),
                    "supported_mode01_pids": sum(
                        1
                        for c in car.supported_commands
                        if c.mode == 1 and c.pid not in (0, 32, 64, 96)
                    ),
                },
                as_json,
            )

    _run(run)


@app.command("dtc")
def dtc(
    port: str = PortOption,
    clear: bool = typer.Option(False, "--clear", help="Clear stored codes after reading them."),
    as_json: bool = JsonOption,
) -> None:
    """Stored trouble codes with their descriptions; ``--clear`` resets them (mode 04)."""

    def run() -> None:
        with _connect(port) as car:
            codes = car.query(obd.commands.GET_DTC).value or []
            pending = car.query(obd.commands.GET_CURRENT_DTC).value or []
            _emit(
                {
                    "stored": [f"{code} {text}".strip() for code, text in codes],
                    "pending": [f"{code} {text}".strip() for code, text in pending],
                },
                as_json,
            )
            if clear:
                typer.confirm("Clear all stored trouble codes and freeze frames?", abort=True)
                car.query(obd.commands.CLEAR_DTC)
                typer.echo("cleared")

    _run(run)


@app.command("live")
def live(port: str = PortOption, as_json: bool = JsonOption) -> None:
    """One reading of every catalog signal the vehicle supports, with units."""

    def run() -> None:
        with _connect(port) as car:
            readings = {}
            for signal in signals.all_signals():
                if signal.obd_command is None:
                    continue
                command = obd.commands[signal.obd_command]
                if not car.supports(command):
                    continue
                response = car.query(command)
                if not response.is_null():
                    readings[signal.name] = f"{_value(response):g} {signal.unit}"
            _emit(readings, as_json)

    _run(run)
