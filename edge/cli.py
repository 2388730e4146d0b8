"""``fleetlink edge``: run the agent, or check a device configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetlink.edge.can_cli import can_record
from fleetlink.edge.config import ConfigError, DeviceConfig, load_config
from fleetlink.edge.logs import quiet_python_obd
from fleetlink.edge.profile_cli import app as profile_app
from fleetlink.firmware_profiles import DEFAULT_PROFILE
from fleetlink.shared.logs import configure_logging

app = typer.Typer(help="The Fleetlink edge agent.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
app.command("can-record")(can_record)

ConfigPath = Annotated[Path, typer.Option("--config", "-c", help="Device configuration (TOML).")]


def _load(path: Path) -> DeviceConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: ConfigPath,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log one JSON object per line.")
    ] = False,
) -> None:
    """Run the agent until SIGINT or SIGTERM."""
    from fleetlink.edge.agent import run_agent

    device_config = _load(config)
    configure_logging(
        json_output=log_json or device_config.log.json_output, level=device_config.log.level
    )
    quiet_python_obd()
    run_agent(device_config)


@app.command("check-config")
def check_config(
    path: Annotated[Path, typer.Argument(help="Device configuration (TOML).")],
) -> None:
    """Validate a device configuration file; exit 2 naming the file and field if it is broken."""
    device_config = _load(path)
    obd = device_config.obd
    polls = obd.poll_groups() if obd else []
    source = "" if obd is None else "own" if obd.poll else f"profile {obd.profile}"
    if obd is not None and not obd.poll and obd.fixed_profile() is None:
        source = f"profile auto: {DEFAULT_PROFILE} until the vehicle answers"
    typer.echo(
        f"{path}: ok (device {device_config.device.tenant}/{device_config.device.id}, "
        f"{sum(len(p.commands) for p in polls)} OBD commands in {len(polls)} poll groups"
        f"{f' ({source})' if source else ''}{_can_summary(device_config)}, "
        f"outbox {device_config.outbox.path})"
    )


def _can_summary(device_config: DeviceConfig) -> str:
    can = device_config.can
    if can is None:
        return ""
    from fleetlink.firmware_profiles import load_can_profile

    loaded = load_can_profile(can.profile)
    interface = can.interface or loaded.settings.interface
    channel = can.channel or loaded.settings.channel
    signals = sum(len(rules) for rules in loaded.rules.values())
    return f", {signals} CAN signals (profile {can.profile}) on {interface} {channel}"
