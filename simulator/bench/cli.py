"""``fleetlink bench``: benchmarks that print Fleetlink's figures beside a baseline."""

from __future__ import annotations

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
    from fleetlink.simulator.bench.ingest import main as _ingest
    from fleetlink.simulator.bench.trips import main as _trips
except ModuleNotFoundError as exc:
    _missing = exc.name

    @app.command("ingest")
    def _ingest_unavailable() -> None:
        """Samples/s from MQTT publish to committed rows (needs fleetlink[cloud])."""
        typer.echo(f"needs {_missing!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2)

    @app.command("api")
    def _api_unavailable() -> None:
        """API latency at a constant request rate (needs fleetlink[cloud])."""
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
    app.command("trips")(_trips)


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
