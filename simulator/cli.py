"""``fleetlink sim``: run a simulated vehicle with an ELM327 on a pseudo-terminal."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from fleetlink.simulator.dtcs import Scenario, ScenarioError, load_scenario
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.j1979 import encode_dtc
from fleetlink.simulator.vehicle import Vehicle

app = typer.Typer(help="Simulated vehicles that speak ELM327 on a pseudo-terminal.")


@app.callback()
def _sim() -> None:
    """Simulated vehicles that speak ELM327 on a pseudo-terminal."""


def _codes(option: str, values: list[str] | None) -> tuple[str, ...]:
    """Return the codes of a repeatable, comma-separated option; raise ScenarioError if bad."""
    codes = [c.strip().upper() for v in values or [] for c in v.split(",") if c.strip()]
    for code in codes:
        try:
            encode_dtc(code)
        except ValueError as exc:
            raise ScenarioError(f"{option} {code}: {exc}") from None
    return tuple(codes)


def _inject(
    sim: SimulatedVehicle,
    stored: tuple[str, ...],
    pending: tuple[str, ...],
    permanent: tuple[str, ...],
    incomplete: tuple[str, ...],
) -> None:
    """Set the faults once the engine idles, so the freeze frame shows a running engine."""
    give_up = time.monotonic() + 3.0
    while sim.snapshot().ignition_on and sim.snapshot().rpm <= 0 and time.monotonic() < give_up:
        time.sleep(0.05)
    for code in stored:
        sim.vehicle.add_dtc(code)
    for code in pending:
        sim.vehicle.add_dtc(code, pending=True)
    for code in permanent:
        sim.vehicle.add_dtc(code, permanent_only=True)
    if incomplete:
        sim.vehicle.set_incomplete_monitors(frozenset(incomplete))


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
        list[str] | None,
        typer.Option(help="Stored trouble codes (MIL on), e.g. P0301,P0420 (repeatable)."),
    ] = None,
    pending: Annotated[
        list[str] | None, typer.Option(help="Pending trouble codes, e.g. P0171 (repeatable).")
    ] = None,
    permanent: Annotated[
        list[str] | None,
        typer.Option(help="Permanent codes whose stored copy was cleared (repeatable)."),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="A TOML file of codes and incomplete monitors (see the guide)."),
    ] = None,
) -> None:
    """Start one simulated vehicle, print its serial port, and run until Ctrl-C."""
    try:
        faults = load_scenario(scenario) if scenario is not None else Scenario()
        stored = (*faults.stored, *_codes("--dtc", dtc))
        pending_codes = (*faults.pending, *_codes("--pending", pending))
        permanent_codes = (*faults.permanent, *_codes("--permanent", permanent))
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # The pending code some seeds start with would hide the injected faults.
    vehicle = Vehicle(seed, pending_dtcs=()) if scenario or dtc or pending or permanent else None
    sim = SimulatedVehicle(
        seed, style, latency_ms / 1000.0, ignition_on=not ignition_off, vehicle=vehicle
    )
    # A run in the background (``&``) ignores Ctrl-C; SIGTERM stops it the same way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    port = sim.start()
    _inject(sim, stored, pending_codes, permanent_codes, faults.incomplete_monitors)
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
