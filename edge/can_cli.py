"""``fleetlink edge can-record``: listen to a CAN bus through a profile for a while, record
every frame to a log file, and print what was decoded and counted."""

from __future__ import annotations

import queue
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from fleetlink.edge.config import RECORD_SUFFIXES, CanSection
from fleetlink.shared.signals import by_id


def can_record(
    profile: Annotated[str, typer.Option(help="Firmware profile with a [can] section.")],
    out: Annotated[
        Path, typer.Option(help=f"Recording to write: {', '.join(RECORD_SUFFIXES)} by suffix.")
    ],
    channel: Annotated[
        str | None, typer.Option(help="Port or interface (default: the profile's).")
    ] = None,
    interface: Annotated[
        str | None, typer.Option(help="socketcan, slcan or virtual (default: the profile's).")
    ] = None,
    bitrate: Annotated[int | None, typer.Option(help="Bit/s (default: the profile's).")] = None,
    seconds: Annotated[
        float, typer.Option(min=0.1, help="How long to listen once the interface is open.")
    ] = 10.0,
) -> None:
    """Record the bus to a candump/ASC/BLF file and print decoded signals and counters."""
    from fleetlink.edge.sources.can_source import CanSource

    try:
        settings = CanSection.model_validate(
            {
                "profile": profile,
                "channel": channel,
                "interface": interface,
                "bitrate": bitrate,
                "record": out,
            }
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    source = CanSource(settings)
    samples: queue.Queue = queue.Queue()
    source.start(samples)
    opening_until = time.monotonic() + 10.0  # an SLCAN adapter takes 2 s to open
    while source.counters["connects"] == 0 and time.monotonic() < opening_until:
        time.sleep(0.05)
    time.sleep(seconds)
    source.stop()
    latest: dict[int, float] = {}
    kept: Counter[int] = Counter()
    while not samples.empty():
        sample = samples.get_nowait()
        latest[sample.signal_id] = sample.value
        kept[sample.signal_id] += 1
    status = source.can_status()
    typer.echo(
        f"{source.interface} {source.channel}: bus {status.bus}, {status.frames} frames "
        f"({source.counters['frames_recorded']} recorded to {out}), "
        f"{status.unknown_id_frames} with ids no DBC describes, "
        f"{status.decode_errors} decode errors, {status.garbled_lines} garbled lines"
    )
    for signal_id in sorted(latest):
        signal = by_id(signal_id)
        typer.echo(
            f"  {signal.name:<48} {latest[signal_id]:>12.3f} {signal.unit:<8} "
            f"({kept[signal_id]} kept)"
        )
    if status.frames == 0:
        raise typer.Exit(1)
