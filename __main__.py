"""The ``fleetlink`` command (also ``python -m fleetlink``).

Each sub-command lives with the package it drives (``fleetlink.edge.cli``,
``fleetlink.cloud.cli``, ``fleetlink.simulator.demo`` …) and is imported only when it is the
one being run, so a device with only ``fleetlink[edge]`` installed never loads the cloud's
stack, and the agent process stays small.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Annotated

import typer

from fleetlink.shared.version import VERSION


@dataclass(frozen=True)
class _SubCommand:
    name: str
    module: str
    extra: str
    help: str


SUBCOMMANDS = (
    _SubCommand("demo", "fleetlink.simulator.demo", "all", "Run the whole stack on this machine."),
    _SubCommand("edge", "fleetlink.edge.cli", "edge", "Run and manage the in-vehicle agent."),
    _SubCommand(
        "diag", "fleetlink.edge.diag", "edge", "Technician's diagnostics over an OBD adapter."
    ),
    _SubCommand("cloud", "fleetlink.cloud.cli", "cloud", "Run and manage the cloud sync server."),
    _SubCommand(
        "sim",
        "fleetlink.simulator.cli",
        "sim",
        "Simulated vehicles: one on a pseudo-terminal, or a week of a whole fleet.",
    ),
    _SubCommand(
        "models",
        "fleetlink.simulator.training.cli",
        "train",
        "On-device anomaly models: train, evaluate, list.",
    ),
    _SubCommand(
        "bench", "fleetlink.simulator.bench.cli", "dev", "Measure Fleetlink against baselines."
    ),
)


def _load(sub: _SubCommand) -> typer.Typer:
    try:
        module = importlib.import_module(sub.module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "fleetlink":
            raise
        typer.echo(
            f"fleetlink {sub.name} needs {exc.name!r}, which is not installed: "
            f"pip install 'fleetlink[{sub.extra}]'",
            err=True,
        )
        raise SystemExit(2) from None
    app: typer.Typer = module.app
    return app


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"fleetlink {VERSION}")
        raise typer.Exit()


def _root_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Fleetlink: vehicle telematics from the OBD port to the fleet portal."""


def build(invoked: str | None) -> typer.Typer:
    """Return the root app, with the real sub-app loaded only for ``invoked``."""
    root = typer.Typer(name="fleetlink", no_args_is_help=True, add_completion=False)
    root.callback()(_root_options)
    for sub in SUBCOMMANDS:
        if sub.name == invoked:
            root.add_typer(_load(sub), name=sub.name, help=sub.help)
        else:
            placeholder = typer.Typer(help=sub.help)
            placeholder.command("")(lambda: None)
            root.add_typer(placeholder, name=sub.name, help=sub.help)
    return root


def main() -> None:
    """Entry point of the ``fleetlink`` console script."""
    invoked = sys.argv[1] if len(sys.argv) > 1 else None
    build(invoked)(prog_name="fleetlink")


if __name__ == "__main__":
    main()
