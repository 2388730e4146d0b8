"""``fleetlink edge``: run the agent, or check a device configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetlink.edge.alerts_cli import app as alerts_app
from fleetlink.edge.can_cli import can_record
from fleetlink.edge.config import ConfigError, DeviceConfig, load_config
from fleetlink.edge.logs import quiet_python_obd
from fleetlink.edge.profile_cli import app as profile_app
from fleetlink.firmware_profiles import DEFAULT_PROFILE
from fleetlink.shared.logs import configure_logging

app = typer.Typer(help="The Fleetlink edge agent.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
app.add_typer(alerts_app, name="alerts")
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
    from fleetlink.edge.device_runner import run_device

    device_config = _load(config)
    configure_logging(
        json_output=log_json or device_config.log.json_output, level=device_config.log.level
    )
    quiet_python_obd()
    run_device(device_config)


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


class _TerminalUi:
    """The wizard's voice on a terminal; asks only when ``interactive``."""

    MARKS = {"pass": "[ ok ]", "fail": "[FAIL]", "skip": "[skip]"}

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def say(self, text: str) -> None:
        typer.echo(text)

    def ask(self, question: str, choices: list[str], default: str | None) -> str | None:
        if choices:
            for n, choice in enumerate(choices, start=1):
                typer.echo(f"  {n}. {choice}")
        answer: str = typer.prompt(question, default=default or "", show_default=bool(default))
        if answer.isdigit() and choices and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1]
        return answer or None

    def check(self, check: object) -> None:
        from fleetlink.shared.enrollment import Check

        assert isinstance(check, Check)
        typer.echo(f"{self.MARKS[check.outcome]} {check.name:<8} {check.detail}")
        if check.hint:
            typer.echo(f"         hint: {check.hint}")


@app.command()
def provision(
    cloud: Annotated[str | None, typer.Option(help="The cloud's API URL.")] = None,
    token: Annotated[str | None, typer.Option(help="The one-time enrollment token.")] = None,
    obd_port: Annotated[str | None, typer.Option(help="OBD adapter port (else detected).")] = None,
    baudrate: Annotated[int | None, typer.Option(help="Adapter baud rate (else found).")] = None,
    vin: Annotated[str | None, typer.Option(help="VIN, if the vehicle does not report it.")] = None,
    profile: Annotated[str | None, typer.Option(help="Firmware profile (else matched).")] = None,
    gps_port: Annotated[str | None, typer.Option(help="Serial port of an NMEA GPS.")] = None,
    gpsd: Annotated[str | None, typer.Option(help="host:port of a gpsd.")] = None,
    can_channel: Annotated[
        str | None, typer.Option(help="CAN channel for the self-test (can0).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Where to write the configuration.")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Outbox, updates and provisioning state.")
    ] = None,
    answers: Annotated[
        Path | None, typer.Option(help="A TOML file with the answers (keys as these options).")
    ] = None,
    no_systemd: Annotated[
        bool, typer.Option("--no-systemd", help="Do not install the systemd unit.")
    ] = False,
    no_selftest: Annotated[bool, typer.Option("--no-selftest", help="Skip the self-test.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Never ask: fail on anything not given.")
    ] = False,
) -> None:
    """Provision this device: adapter, VIN, profile, enrollment, configuration, service and
    self-test. Rerun to continue after a failure; it never repeats a finished step."""
    import sys

    from fleetlink.edge.provision import ProvisionError
    from fleetlink.edge.provision.wizard import Provisioner, load_answers, make_answers

    try:
        data = load_answers(answers) if answers else {}
        flags = {
            "cloud": cloud,
            "token": token,
            "obd_port": obd_port,
            "baudrate": baudrate,
            "vin": vin,
            "profile": profile,
            "gps_port": gps_port,
            "gpsd": gpsd,
            "can_channel": can_channel,
            "config": config,
            "state_dir": state_dir,
        }
        data.update({k: v for k, v in flags.items() if v is not None})
        if no_systemd:
            data["systemd"] = False
        if no_selftest:
            data["selftest"] = False
        settings = make_answers(data, str(answers or "options"))
        ui = _TerminalUi(interactive=not yes and sys.stdin.isatty())
        Provisioner(settings, ui).run()
    except ProvisionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("provisioned")


@app.command()
def selftest(
    config: ConfigPath,
    can_channel: Annotated[str | None, typer.Option(help="CAN channel to listen on.")] = None,
    can_interface: Annotated[str, typer.Option(help="python-can interface.")] = "socketcan",
    upload: Annotated[
        bool, typer.Option(help="Upload the signed report to the cloud ([cloud] api_url).")
    ] = True,
) -> None:
    """Check adapter, vehicle, CAN, GPS, clock, broker round trip and disk; exit 1 on a failure."""
    from fleetlink.edge.provision import ProvisionError
    from fleetlink.edge.provision.enroll_client import upload_report
    from fleetlink.edge.selftest import CanChannel, run_selftest

    device_config = _load(config)
    ui = _TerminalUi(interactive=False)
    channel = CanChannel(can_interface, can_channel) if can_channel else None
    report = run_selftest(device_config, channel, ui.check)
    if upload and device_config.cloud is not None:
        try:
            stored = upload_report(device_config.cloud.api_url, report)
            typer.echo(f"report {stored['id']} uploaded")
        except ProvisionError as exc:
            typer.echo(f"error: report not uploaded: {exc}", err=True)
            raise typer.Exit(1) from None
    if not report.passed:
        raise typer.Exit(1)
