"""``fleetlink edge alerts``: list the device's recent alerts and acknowledge one from the
terminal. The acknowledgement is written to the alert record beside the outbox; the running
agent sends it to the cloud and takes the alert off the cab display within a second."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from fleetlink.edge.alerts.store import AlertStore, AlertStoreError, alert_store_path
from fleetlink.edge.config import ConfigError, load_config

app = typer.Typer(help="The in-cab alerts of this device.", no_args_is_help=True)

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="Device configuration (TOML).")]


def _store(config: Path) -> AlertStore:
    try:
        return AlertStore(alert_store_path(load_config(config).outbox.path))
    except (ConfigError, AlertStoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_alerts(
    config: ConfigPath,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
) -> None:
    """Print the newest alerts: id, time, rule, whether escalated or acknowledged, message."""
    with _store(config) as store:
        for alert in store.recent(limit):
            at = datetime.fromtimestamp(alert.time_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
            state = "acknowledged" if alert.acked_ms else "open"
            escalated = " escalated" if alert.escalated else ""
            typer.echo(f"{alert.id}  {at}  {alert.rule:<16} {state}{escalated}  {alert.message}")


@app.command()
def ack(
    config: ConfigPath,
    alert_id: Annotated[
        str | None, typer.Argument(help="Alert id (default: the newest open alert).")
    ] = None,
) -> None:
    """Acknowledge an alert as the driver; exit 1 when there is no such open alert."""
    with _store(config) as store:
        if alert_id is None:
            open_alerts = store.recent(1, unacknowledged=True)
            if not open_alerts:
                typer.echo("no open alert to acknowledge", err=True)
                raise typer.Exit(1)
            target = open_alerts[0].id
        else:
            try:
                target = uuid.UUID(alert_id)
            except ValueError:
                typer.echo(f"error: {alert_id!r} is not an alert id", err=True)
                raise typer.Exit(2) from None
        if not store.acknowledge(target, "terminal", int(time.time() * 1000)):
            typer.echo(f"no open alert {target} (unknown, or acknowledged already)", err=True)
            raise typer.Exit(1)
    typer.echo(f"acknowledged {target}")
