"""``fleetlink bench``: benchmarks that print Fleetlink's figures beside a baseline."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("codec")
def codec_command(
    repeat: int = typer.Option(5, min=1, help="Repetitions; the median is reported."),
) -> None:
    """Encode/decode speed and bytes per sample of every wire format."""
    from shared import codec_bench

    typer.echo(codec_bench.report(repeat=repeat))


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
) -> None:
    """Samples/s from MQTT publish to committed rows, beside raw COPY (the ceiling)."""
    try:
        from cloud import bench_ingest
    except ModuleNotFoundError as exc:
        typer.echo(f"needs {exc.name!r}: pip install 'fleetlink[cloud]'", err=True)
        raise typer.Exit(2) from None
    bench_ingest.main(ctx)
