"""``fleetlink sim``: run a simulated vehicle with an ELM327 on a pseudo-terminal."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from fleetlink.simulator.fleet import SimulatedVehicle

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
) -> None:
    """Start one simulated vehicle, print its serial port, and run until Ctrl-C."""
    sim = SimulatedVehicle(seed, style, latency_ms / 1000.0, ignition_on=not ignition_off)
    port = sim.start()
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
