"""``fleetlink edge``: run the agent, or check a device configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetlink.edge.config import ConfigError, DeviceConfig, load_config
from fleetlink.edge.logs import quiet_python_obd
from fleetlink.firmware_profiles import DEFAULT_PROFILE
from fleetlink.shared.logs import configure_logging

app = typer.Typer(help="The Fleetlink edge agent.", no_args_is_help=True)

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
        f"{f' ({source})' if source else ''}, outbox {device_config.outbox.path})"
    )


@app.command("profiles")
def profiles() -> None:
    """List the shipped firmware profiles with what each one polls."""
    from fleetlink.firmware_profiles import load_profile, profile_ids

    for profile_id in profile_ids():
        profile = load_profile(profile_id)
        commands = len(profile.obd.schedule())
        scope = "any vehicle" if profile.match.is_fallback else "matched vehicles"
        what = f"{commands} OBD commands, {scope}"
        typer.echo(f"{profile.id:<24} {profile.version:<8} {what}: {profile.name}")


profile_app = typer.Typer(help="Firmware profiles: what the agent reads from a vehicle.")
app.add_typer(profile_app, name="profile")


@profile_app.command("suggest")
def profile_suggest(
    port: Annotated[
        str | None, typer.Option(help="Read the vehicle live through the adapter on this port.")
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(help="Or use the vehicle the agent recorded last (its vehicle.sqlite)."),
    ] = None,
    baudrate: Annotated[int | None, typer.Option(help="The adapter's baud rate.")] = None,
    profile_id: Annotated[
        str | None, typer.Option("--id", help="The profile's id (default: make and year).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the profile here (default: print it).")
    ] = None,
) -> None:
    """Write a starting profile for a vehicle no shipped profile fits, from what it reports."""
    from fleetlink.edge.capabilities import CapabilityStore, CapabilityStoreError
    from fleetlink.edge.link.elm327 import Elm327Link
    from fleetlink.edge.link.errors import LinkError
    from fleetlink.edge.profile_suggest import suggest_profile

    if (port is None) == (record is None):
        typer.echo("error: give either --port or --record", err=True)
        raise typer.Exit(2)
    if port is not None:
        from fleetlink.edge.capabilities import read_capabilities

        link = Elm327Link(port, baudrate=baudrate)
        try:
            if link.open() != "vehicle":
                typer.echo(
                    f"error: the adapter on {port} answers but no vehicle does; "
                    "switch the ignition on and try again",
                    err=True,
                )
                raise typer.Exit(1)
            found = read_capabilities(link, link.read_vin())
        except LinkError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        finally:
            link.close()
    else:
        assert record is not None
        if not record.is_file():
            typer.echo(
                f"error: {record}: no such file (the agent keeps vehicle.sqlite beside its outbox)",
                err=True,
            )
            raise typer.Exit(2)
        try:
            store = CapabilityStore(record)
            latest = store.latest()
            store.close()
        except (CapabilityStoreError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if latest is None:
            typer.echo(f"error: {record}: no vehicle recorded yet", err=True)
            raise typer.Exit(1)
        found = latest
    try:
        text = suggest_profile(found, profile_id)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    pids = text.count("[[obd.pids]]")
    typer.echo(f"{out}: profile for VIN {found.vin or '(none)'} with {pids} PIDs written")
