"""``fleetlink bench``: benchmarks that print Fleetlink's figures beside a baseline."""

from __future__ import annotations

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
else:
    app.command("ingest")(_ingest)
    app.command("api")(_api)
