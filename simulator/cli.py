"""``fleetlink sim``: run a simulated vehicle with an ELM327 on a pseudo-terminal."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.j1979 import encode_dtc
from fleetlink.simulator.wear import WearState, simulate_fleet

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
    battery_wear_v: Annotated[
        float, typer.Option(min=0.0, max=3.0, help="Injected wear: volts the battery has lost.")
    ] = 0.0,
    coolant_leak: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Injected wear: radiator capacity lost, 0-1.")
    ] = 0.0,
) -> None:
    """Start one simulated vehicle, print its serial port, and run until Ctrl-C."""
    sim = SimulatedVehicle(seed, style, latency_ms / 1000.0, ignition_on=not ignition_off)
    sim.vehicle.set_wear(WearState(-battery_wear_v, coolant_leak))
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
        if link is not None and link.is_symlink():
            link.unlink()


@app.command()
def wear(
    vehicles: Annotated[int, typer.Option(min=1, max=10_000, help="Vehicles in the fleet.")] = 20,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Simulated days.")] = 7,
    seed: Annotated[int, typer.Option(help="Seed of the fleet.")] = 0,
) -> None:
    """Live a fleet with injected wear day by day (time-accelerated); print each vehicle's
    worst day, its services and the failures, with their days."""
    for n, history in enumerate(simulate_fleet(vehicles, days, seed)):
        km = sum(d.km for d in history)
        low = min(d.battery_low_v for d in history)
        high = max(d.coolant_high_c for d in history)
        codes = sorted({c for d in history for c in d.dtcs})
        failures = [f"{f}@day{d.day}" for d in history for f in d.failures]
        services = [d.day for d in history if d.serviced]
        typer.echo(
            f"vehicle {n:3d}  {km:7.0f} km  battery low {low:5.2f} V  coolant high {high:5.1f} C"
            f"  codes {','.join(codes) or '-'}  serviced {services or '-'}"
            f"  failures {', '.join(failures) or '-'}"
        )
