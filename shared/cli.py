"""The ``fleetlink`` command.

Each sub-command lives with the package it drives (``edge.cli``, ``cloud.cli``,
``simulator.cli`` …) and is imported only when it is the one being run, so a
device with only ``fleetlink[edge]`` installed never loads the cloud's stack,
and the agent process stays small.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import typer


@dataclass(frozen=True)
class _SubCommand:
    name: str
    module: str
    extra: str
    help: str


SUBCOMMANDS = (
    _SubCommand("demo", "simulator.demo", "all", "Run the whole stack on this machine."),
    _SubCommand("edge", "edge.cli", "edge", "Run and manage the in-vehicle agent."),
    _SubCommand("diag", "edge.diag", "edge", "Technician's diagnostics over an OBD adapter."),
    _SubCommand("cloud", "cloud.cli", "cloud", "Run and manage the cloud sync server."),
    _SubCommand("sim", "simulator.cli", "sim", "Run a simulated vehicle on a pseudo-terminal."),
    _SubCommand("bench", "shared.bench_cli", "dev", "Measure Fleetlink against baselines."),
)


def _load(sub: _SubCommand) -> typer.Typer:
    try:
        module = importlib.import_module(sub.module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in {"edge", "cloud", "shared", "simulator"}:
            raise
        typer.echo(
            f"fleetlink {sub.name} needs {exc.name!r}, which is not installed: "
            f"pip install 'fleetlink[{sub.extra}]'",
            err=True,
        )
        raise SystemExit(2) from None
    app: typer.Typer = module.app
    return app


def build(invoked: str | None) -> typer.Typer:
    """Return the root app, with the real sub-app loaded only for ``invoked``."""
    root = typer.Typer(
        name="fleetlink",
        help="Fleetlink: vehicle telematics from the OBD port to the fleet portal.",
        no_args_is_help=True,
        add_completion=False,
    )
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
    build(invoked)()
