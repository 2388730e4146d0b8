"""``fleetlink edge profile``: list, show and validate firmware profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetlink.firmware_profiles import (
    Profile,
    ProfileError,
    load_can_profile,
    load_profile,
    profile_ids,
)
from fleetlink.shared.signals import by_obd_command

app = typer.Typer(help="Firmware profiles: what the agent reads from each vehicle platform.")


@app.callback()
def _profile() -> None:
    """Firmware profiles: what the agent reads from each vehicle platform."""


def _load(ref: str) -> Profile:
    try:
        return load_profile(Path(ref) if ref.endswith(".toml") else ref)
    except ProfileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _summary(profile: Profile) -> str:
    parts = []
    commands = len(profile.obd.schedule()) if profile.obd is not None else 0
    if commands:
        parts.append(f"{commands} OBD commands")
    if profile.can is not None:
        kind = "J1939" if profile.can.j1939 else "CAN"
        parts.append(f"{len(profile.can.signals)} {kind} signals")
    scope = "any vehicle" if profile.match.is_fallback else "matched vehicles"
    return f"{', '.join(parts)}, {scope}"


@app.command("list")
def list_profiles() -> None:
    """List the shipped profiles with what each one reads."""
    for profile_id in profile_ids():
        profile = _load(profile_id)
        typer.echo(f"{profile.id:<24} {profile.version:<8} {_summary(profile)}: {profile.name}")


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="A shipped profile's id or a .toml file.")],
) -> None:
    """Print one profile: match rules, OBD poll groups, CAN bus and mapping, alert limits."""
    profile = _load(name)
    typer.echo(f"{profile.id} {profile.version} (format {profile.format}): {profile.name}")
    if profile.description:
        typer.echo(f"  {profile.description}")
    match = profile.match
    if match.is_fallback:
        typer.echo("match: any vehicle (fallback)")
    else:
        rules = {"wmi": match.wmi, "makes": match.makes, "models": match.models}
        shown = [f"{k} {', '.join(v)}" for k, v in rules.items() if v]
        if match.years:
            shown.append(f"years {match.years[0]}-{match.years[1]}")
        typer.echo(f"match: {'; '.join(shown)}")
    for group in profile.poll_groups:
        names = ", ".join(f"{c} ({by_obd_command(c).name})" for c in group.commands)
        typer.echo(f"obd {group.rate_hz:g} Hz: {names}")
    if profile.can is not None:
        can = profile.can
        loaded = load_can_profile(Path(name) if name.endswith(".toml") else name)
        typer.echo(
            f"can: {can.interface} {can.channel} at {can.bitrate} bit/s"
            f"{', J1939 (matched by PGN)' if can.j1939 else ''}; DBC "
            f"{', '.join(p.name for p in loaded.dbc_files)} "
            f"({len(loaded.database.messages)} messages)"
        )
        for mapping in can.signals:
            how = [f"{'at most ' if mapping.on_change else ''}every {mapping.interval_ms} ms"]
            if mapping.on_change:
                how.append(f"on change > {mapping.deadband:g}" if mapping.deadband else "on change")
            if mapping.transform is not None and mapping.transform.math:
                how.append(f"x -> {mapping.transform.math}")
            elif mapping.transform is not None and mapping.transform.mapping:
                how.append(f"map {mapping.transform.mapping}")
            typer.echo(f"  {mapping.message}.{mapping.signal} -> {mapping.vss} ({', '.join(how)})")
    limits = profile.alerts.model_dump(exclude_none=True)
    if limits:
        typer.echo("alerts: " + ", ".join(f"{k} {v:g}" for k, v in limits.items()))
    for model in profile.models:
        features = len(model.features)
        typer.echo(
            f"model {model.name}: {model.file} sha256 {model.sha256[:12]}… ({features} inputs)"
        )


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="A profile file (.toml).")],
) -> None:
    """Check a profile file and the DBC files it names; exit 2 naming the file and the line
    or field if it is broken."""
    try:
        profile = load_profile(path)
    except ProfileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{path}: ok ({profile.id} {profile.version}: {_summary(profile)})")


@app.command("suggest")
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


@app.command("check-responses")
def check_responses(
    cases_dir: Annotated[
        Path, typer.Argument(help="An OBDb test-case folder: <model year>/commands/*.yaml inside.")
    ],
    signalset: Annotated[
        list[Path],
        typer.Option(
            help="An OBDb v3 signalset; repeat, most specific first (model, make, SAEJ1979)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report instead.")] = False,
) -> None:
    """Decode every recorded response of an OBDb vehicle with its signalsets and compare the
    values; exit 1 if any case fails, 2 if a file cannot be read."""
    import json

    from fleetlink.firmware_profiles.obdb import SignalsetError, load_signalset
    from fleetlink.firmware_profiles.obdb.cases import run_cases

    try:
        report = run_cases(cases_dir, [load_signalset(path) for path in signalset])
    except SignalsetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        payload = {
            "passed": report.passed,
            "failed": report.failed,
            "counts": dict(sorted(report.stats.counts.items())),
            "failures": [
                {
                    "year": f.year,
                    "command": f.command_id,
                    "response": f.response,
                    "problems": list(f.problems),
                }
                for f in report.failures
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        for failure in report.failures:
            response = failure.response.replace("\n", " ")
            typer.echo(f"FAIL {failure.year} {failure.command_id} [{response}]")
            for problem in failure.problems:
                typer.echo(f"  {problem}")
        typer.echo(f"{report.passed} passed, {report.failed} failed")
    if report.failed:
        raise typer.Exit(1)
