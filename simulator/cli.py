"""``fleetlink sim``: run a simulated vehicle with an ELM327 on a pseudo-terminal."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.j1979 import encode_dtc
from fleetlink.simulator.nmea import NmeaEmitter

app = typer.Typer(help="Simulated vehicles that speak ELM327 on a pseudo-terminal.")


@app.callback()
def _sim() -> None:
    """Simulated vehicles that speak ELM327 on a pseudo-terminal."""


@app.command()
def run(
    style: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Driver style: 0 calm ... 1 aggressive.")
    ] = 0.3,
    latency_ms: Annotated[
        float, typer.Option(min=0.0, help="Delay before each OBD reply, in milliseconds.")
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the vehicle, the driver and the VIN.")] = 0,
    ignition_off: Annotated[
        bool, typer.Option("--ignition-off", help="Start with the ignition off.")
    ] = False,
    link: Annotated[
        Path | None,
        typer.Option(help="Also make this symlink to the port (like a /dev/serial/by-id name)."),
    ] = None,
    dtc: Annotated[
        list[str] | None, typer.Option(help="A stored trouble code such as P0301 (repeatable).")
    ] = None,
    gps: Annotated[
        Path | None,
        typer.Option(help="Also run an NMEA GPS receiver on a pty, linked at this path."),
    ] = None,
) -> None:
    """Start one simulated vehicle, print its serial port, and run until Ctrl-C."""
    sim = SimulatedVehicle(seed, style, latency_ms / 1000.0, ignition_on=not ignition_off)
    for code in dtc or []:
        try:
            encode_dtc(code)
        except ValueError as exc:
            typer.echo(f"error: --dtc {code}: {exc}", err=True)
            raise typer.Exit(2) from None
        sim.vehicle.add_dtc(code)
    # A run in the background (``&``) ignores Ctrl-C; SIGTERM stops it the same way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    port = sim.start()
    receiver = NmeaEmitter(sim.snapshot) if gps is not None else None
    if receiver is not None and gps is not None:
        gps_port = receiver.start()
        if gps.is_symlink():
            gps.unlink()
        try:
            gps.symlink_to(gps_port)
        except OSError as exc:
            receiver.stop()
            sim.stop()
            typer.echo(f"error: cannot make {gps}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"NMEA GPS on {gps} -> {gps_port}")
    if link is not None:
        if link.is_symlink():
            link.unlink()
        try:
            link.symlink_to(port)
        except OSError as exc:
            sim.stop()
            typer.echo(f"error: cannot make {link}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{link} -> {port}")
    typer.echo(f"ELM327 on {port}  VIN {sim.vin}  style {style}  seed {seed}")
    typer.echo(f"connect with: python -c \"import obd; print(obd.OBD('{port}').status())\"")
    try:
        while True:
            time.sleep(5.0)
            s = sim.snapshot()
            typer.echo(
                f"{s.speed_kmh:5.1f} km/h  {s.rpm:5.0f} rpm  gear {s.gear}  "
                f"coolant {s.coolant_temp_c:5.1f} C  fuel {s.fuel_level_pct:4.1f} %  "
                f"({s.latitude:.5f}, {s.longitude:.5f})"
            )
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        sim.stop()
        if receiver is not None:
            receiver.stop()
        for made in (link, gps):
            if made is not None and made.is_symlink():
                made.unlink()
