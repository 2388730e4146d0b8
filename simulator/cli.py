"""``fleetlink sim``: run a simulated vehicle with an ELM327 on a pseudo-terminal."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.j1979 import encode_dtc

app = typer.Typer(help="Simulated vehicles: one on a pseudo-terminal, or a week of a fleet.")


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
def week(
    vehicles: Annotated[int, typer.Option(min=1, max=10_000, help="Vehicles (and drivers).")] = 20,
    days: Annotated[
        int, typer.Option(min=1, max=60, help="Days, ending the day before yesterday.")
    ] = 7,
    trips_per_day: Annotated[
        int, typer.Option(min=1, max=4, help="Trips per vehicle per day.")
    ] = 3,
    trip_minutes: Annotated[float, typer.Option(min=1, max=60, help="Mean trip length.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of vehicles, drivers and routes.")] = 0,
    tenant: Annotated[str, typer.Option(help="Tenant to create (or add to).")] = "demo-week",
) -> None:
    """Store a time-accelerated week of a simulated fleet, with drivers assigned, through the
    ingest's store into FLEETLINK_DATABASE_URL; trips and scores are recomputed before it ends."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from fleetlink.simulator.week import WeekPlan, summarise_week

    first = datetime.now(UTC).date() - timedelta(days=days + 1)
    plan = WeekPlan(vehicles, days, trips_per_day, trip_minutes, seed, first)
    typer.echo(
        f"simulating {vehicles} vehicles x {days} days ({first} to {first + timedelta(days - 1)}) "
        f"for tenant {tenant} ..."
    )
    for line in asyncio.run(summarise_week(tenant, plan)):
        typer.echo(line)
