"""``fleetlink bench``: benchmarks that print Fleetlink's figures beside a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("codec")
def codec_command(
    repeat: int = typer.Option(5, min=1, help="Repetitions; the median is reported."),
) -> None:
    """Encode/decode speed and bytes per sample of every wire format."""
    from fleetlink.simulator.bench import codec

    typer.echo(codec.report(repeat=repeat))


try:
    from fleetlink.simulator.bench.api import main as _api
    from fleetlink.simulator.bench.drain import main as _drain
    from fleetlink.simulator.bench.fleet import main as _fleet
    from fleetlink.simulator.bench.ingest import main as _ingest
    from fleetlink.simulator.bench.live import main as _live
    from fleetlink.simulator.bench.storage import main as _storage
    from fleetlink.simulator.bench.trips import main as _trips
except ModuleNotFoundError as exc:
    _missing = exc.name

    @app.command("ingest")
    def _ingest_unavailable() -> None:
        """Samples/s from MQTT publish to committed rows (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)

    @app.command("fleet")
    def _fleet_unavailable() -> None:
        """The largest fleet sim fleet sustains at one batch per 10 s (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)

    @app.command("drain")
    def _drain_unavailable() -> None:
        """Backlog drain after an outage and outbox endurance (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)

    @app.command("api")
    def _api_unavailable() -> None:
        """API latency at a constant request rate (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)

    @app.command("live")
    def _live_unavailable() -> None:
        """Publish-to-SSE-client latency with 1,000 clients (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)

    @app.command("storage")
    def _storage_unavailable() -> None:
        """Bytes per sample and query times of sample layouts (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)

    @app.command("trips")
    def _trips_unavailable() -> None:
        """Recomputing a day of trips after late data (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)
else:
    app.command("ingest")(_ingest)
    app.command("api")(_api)
    app.command("drain")(_drain)
    app.command("fleet")(_fleet)
    app.command("live")(_live)
    app.command("trips")(_trips)
    app.command("storage")(_storage)


@app.command("can")
def can_command(
    rate: Annotated[float, typer.Option(help="Frames per second on the bus.")] = 4500.0,
    seconds: Annotated[float, typer.Option(min=1.0, help="Length of each run.")] = 10.0,
    repeat: Annotated[int, typer.Option(min=1, help="Runs; medians are reported.")] = 3,
) -> None:
    """Frames/s from an SLCAN pty to samples in the outbox, beside cantools' decode loop."""
    from fleetlink.simulator.bench import can

    typer.echo(can.report(rate, seconds, repeat))


@app.command("link-stall")
def link_stall_command(
    stall: Annotated[
        list[float] | None, typer.Option(help="Stall length in seconds (repeatable).")
    ] = None,
    adapter: Annotated[
        list[str] | None, typer.Option(help="simulator and/or elm327-emulator (repeatable).")
    ] = None,
    stall_after: Annotated[float, typer.Option(help="The agent's obd.stall_after_s.")] = 2.0,
    baseline: Annotated[
        bool, typer.Option(help="Also run python-obd's plain loop through each stall.")
    ] = True,
) -> None:
    """Stall the adapter for 20 s and 60 s, let it replay its queue, check every stored value."""
    from fleetlink.simulator.bench import link_stall

    stall = stall or [20.0, 60.0]
    adapter = adapter or ["simulator", "elm327-emulator"]
    kinds = [k for k in adapter if k in ("simulator", "elm327-emulator")]
    if len(kinds) != len(adapter):
        typer.echo("--adapter is simulator or elm327-emulator", err=True)
        raise typer.Exit(2)
    typer.echo(link_stall.report(kinds, stall, stall_after, baseline))  # type: ignore[arg-type]


@app.command("obd")
def obd_command(
    seconds: Annotated[float, typer.Option(min=1.0, help="Length of each run (s).")] = 5.0,
    repeat: Annotated[int, typer.Option(min=1, help="Runs per reader; medians are shown.")] = 3,
    latency_ms: Annotated[
        float, typer.Option(min=0.0, help="The simulated ECU's response time per request.")
    ] = 30.0,
    signalset: Annotated[
        list[Path] | None,
        typer.Option(
            help="OBDb signalset (repeatable, most specific first): adds the agent's mode 22 "
            "polling of its commands as a fourth reader."
        ),
    ] = None,
    model_year: Annotated[
        int | None, typer.Option(help="Model year selecting the signalsets' variants.")
    ] = None,
) -> None:
    """OBD values/s: the agent's multi-PID scheduling (and mode 22 polling) beside python-obd's
    one-PID loop."""
    from fleetlink.firmware_profiles.obdb import SignalsetError
    from fleetlink.simulator.bench import obd

    try:
        typer.echo(obd.report(seconds, repeat, latency_ms, signalset or [], model_year))
    except SignalsetError as exc:
        typer.echo(f"error: --signalset: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("maintenance")
def maintenance_command(
    vehicles: Annotated[int, typer.Option(min=10, help="Vehicles per simulated fleet.")] = 200,
    days: Annotated[int, typer.Option(min=150, help="Simulated days per fleet.")] = 540,
    seed: Annotated[int, typer.Option(help="Seed of the fleet the model is scored on.")] = 2,
    train_seed: Annotated[int, typer.Option(help="Seed of the fleet it is fitted on.")] = 1,
    step: Annotated[int, typer.Option(min=1, help="Score every n-th day of each vehicle.")] = 3,
    write_model: Annotated[
        Path | None, typer.Option(help="Also write the fitted model (risk_model.json) here.")
    ] = None,
) -> None:
    """Failure probability within 7/30/90 days beside an interval-only schedule (backtest)."""
    try:
        from fleetlink.simulator.bench import maintenance
    except ModuleNotFoundError as exc:
        typer.echo(f"needs {exc.name!r}: pip install 'fleetlink[sim]'", err=True)
        raise typer.Exit(2) from None
    typer.echo(maintenance.report(vehicles, days, seed, train_seed, step, write_model))


@app.command("models")
def models_command(
    normal: Annotated[int, typer.Option(min=1, help="Held-out normal drives.")] = 60,
    faulty: Annotated[int, typer.Option(min=1, help="Held-out drives per fault type.")] = 10,
    minutes: Annotated[float, typer.Option(min=2, help="Mean drive length.")] = 25.0,
    seed: Annotated[int, typer.Option(help="Seed of the held-out drives.")] = 1001,
) -> None:
    """Anomaly model vs rule thresholds; per-window time (LiteRT int8 vs numpy); peak RSS."""
    try:
        from fleetlink.simulator.bench import models
    except ModuleNotFoundError as exc:
        typer.echo(f"needs {exc.name!r}: pip install 'fleetlink[edge,sim]'", err=True)
        raise typer.Exit(2) from None
    typer.echo(models.report(normal, faulty, minutes, seed))
