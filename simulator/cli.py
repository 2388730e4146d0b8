"""``fleetlink sim``: run a simulated vehicle with an ELM327 on a pseudo-terminal."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from fleetlink.firmware_profiles.obdb import SignalsetError
from fleetlink.simulator.can_bus import SimulatedCanBus, Transport
from fleetlink.simulator.can_schedule import VehicleKind
from fleetlink.simulator.dtcs import Scenario, ScenarioError, load_scenario
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.j1979 import encode_dtc
from fleetlink.simulator.obdb_ecus import ObdbEcus
from fleetlink.simulator.vehicle import Vehicle
from fleetlink.simulator.wear import WearState, simulate_fleet

app = typer.Typer(help="Simulated vehicles: one on a pseudo-terminal, or a week of a fleet.")


@app.callback()
def _sim() -> None:
    """Simulated vehicles that speak ELM327 on a pseudo-terminal."""


def _codes(option: str, values: list[str] | None) -> tuple[str, ...]:
    """Return the codes of a repeatable, comma-separated option; raise ScenarioError if bad."""
    codes = [c.strip().upper() for v in values or [] for c in v.split(",") if c.strip()]
    for code in codes:
        try:
            encode_dtc(code)
        except ValueError as exc:
            raise ScenarioError(f"{option} {code}: {exc}") from None
    return tuple(codes)


def _inject(
    sim: SimulatedVehicle,
    stored: tuple[str, ...],
    pending: tuple[str, ...],
    permanent: tuple[str, ...],
    incomplete: tuple[str, ...],
) -> None:
    """Set the faults once the engine idles, so the freeze frame shows a running engine."""
    give_up = time.monotonic() + 3.0
    while sim.snapshot().ignition_on and sim.snapshot().rpm <= 0 and time.monotonic() < give_up:
        time.sleep(0.05)
    for code in stored:
        sim.vehicle.add_dtc(code)
    for code in pending:
        sim.vehicle.add_dtc(code, pending=True)
    for code in permanent:
        sim.vehicle.add_dtc(code, permanent_only=True)
    if incomplete:
        sim.vehicle.set_incomplete_monitors(frozenset(incomplete))


@app.command()
def run(
    style: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Driver style: 0 calm ... 1 aggressive.")
    ] = 0.3,
    latency_ms: Annotated[
        float, typer.Option(min=0.0, help="Delay before each OBD reply, in milliseconds.")
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the vehicle, the driver and the VIN.")] = 0,
    ignition_off: Annotated[
        bool, typer.Option("--ignition-off", help="Start with the ignition off.")
    ] = False,
    link: Annotated[
        Path | None,
        typer.Option(help="Also make this symlink to the port (like a /dev/serial/by-id name)."),
    ] = None,
    dtc: Annotated[
        list[str] | None,
        typer.Option(help="Stored trouble codes (MIL on), e.g. P0301,P0420 (repeatable)."),
    ] = None,
    pending: Annotated[
        list[str] | None, typer.Option(help="Pending trouble codes, e.g. P0171 (repeatable).")
    ] = None,
    permanent: Annotated[
        list[str] | None,
        typer.Option(help="Permanent codes whose stored copy was cleared (repeatable)."),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="A TOML file of codes and incomplete monitors (see the guide)."),
    ] = None,
    vehicle: Annotated[
        str, typer.Option(help="car (11-bit powertrain CAN) or truck (J1939, 29-bit ids).")
    ] = "car",
    can_bus: Annotated[
        str | None,
        typer.Option(
            "--can",
            help="Also put the vehicle's CAN bus on an SLCAN pty (slcan) or on python-can's "
            "in-process virtual bus (virtual).",
        ),
    ] = None,
    can_link: Annotated[
        Path | None,
        typer.Option(help="Also make this symlink to the SLCAN port (like /dev/serial/by-id)."),
    ] = None,
    clone: Annotated[
        bool, typer.Option("--clone", help="Act as a clone adapter that refuses ATAT and ATST.")
    ] = False,
    battery_drain: Annotated[
        float,
        typer.Option(min=0.0, help="Volts per second the battery loses while the engine is off."),
    ] = 0.0,
    gps: Annotated[
        Path | None,
        typer.Option(help="Also a GNSS receiver (NMEA 0183) on a pty, linked at this path."),
    ] = None,
    battery_wear_v: Annotated[
        float, typer.Option(min=0.0, max=3.0, help="Injected wear: volts the battery has lost.")
    ] = 0.0,
    coolant_leak: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Injected wear: radiator capacity lost, 0-1.")
    ] = 0.0,
    signalset: Annotated[
        list[Path] | None,
        typer.Option(
            help="An OBDb signalset whose mode 22 commands the vehicle answers (repeatable, "
            "most specific first, e.g. the model's then the make's)."
        ),
    ] = None,
    model_year: Annotated[
        int | None, typer.Option(help="Model year selecting the signalsets' variants.")
    ] = None,
    charging_loss_v: Annotated[
        float,
        typer.Option(min=0.0, max=3.0, help="Injected fault: a failing alternator's lost volts."),
    ] = 0.0,
    misfire: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Injected fault: misfiring, 0-1 (rough rpm).")
    ] = 0.0,
    air_restriction: Annotated[
        float,
        typer.Option(min=0.0, max=0.9, help="Injected fault: a clogged air filter, 0-0.9."),
    ] = 0.0,
) -> None:
    """Start one simulated vehicle, print its serial port(s), and run until Ctrl-C."""
    if vehicle not in ("car", "truck"):
        typer.echo("error: --vehicle is car or truck", err=True)
        raise typer.Exit(2)
    if can_bus not in (None, "slcan", "virtual"):
        typer.echo("error: --can is slcan or virtual", err=True)
        raise typer.Exit(2)
    try:
        faults = load_scenario(scenario) if scenario is not None else Scenario()
        stored = (*faults.stored, *_codes("--dtc", dtc))
        pending_codes = (*faults.pending, *_codes("--pending", pending))
        permanent_codes = (*faults.permanent, *_codes("--permanent", permanent))
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    ecus = None
    if signalset:
        try:
            ecus = ObdbEcus.from_files(signalset, model_year)
        except SignalsetError as exc:
            typer.echo(f"error: --signalset: {exc}", err=True)
            raise typer.Exit(2) from None
    # The pending code some seeds start with would hide the injected faults.
    faulty = Vehicle(seed, pending_dtcs=()) if scenario or dtc or pending or permanent else None
    sim = SimulatedVehicle(
        seed,
        style,
        latency_ms / 1000.0,
        ignition_on=not ignition_off,
        clone=clone,
        gps=gps is not None,
        vehicle=faulty,
        obdb=ecus,
    )
    sim.vehicle.set_battery_drain(battery_drain)
    sim.vehicle.set_wear(
        WearState(
            -battery_wear_v,
            coolant_leak,
            charging_loss_v=charging_loss_v,
            misfire=misfire,
            air_restriction=air_restriction,
        )
    )
    # A run in the background (``&``) ignores Ctrl-C; SIGTERM stops it the same way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if can_link is not None and can_bus != "slcan":
        typer.echo("error: --can-link needs --can slcan", err=True)
        raise typer.Exit(2)
    port = sim.start()
    bus = None
    if can_bus is not None:
        kind: VehicleKind = "truck" if vehicle == "truck" else "car"
        transport: Transport = "virtual" if can_bus == "virtual" else "slcan"
        bus = SimulatedCanBus(sim.vehicle, kind, transport, seed=seed)
        where = bus.start()
        rate = bus.schedule.frames_per_s
        if transport == "slcan":
            typer.echo(f"SLCAN ({vehicle} CAN bus, {rate:.0f} frames/s) on {where}")
            if can_link is not None:
                _link(can_link, where)
                typer.echo(f"{can_link} -> {where}")
        else:
            typer.echo(f"{vehicle} CAN bus ({rate:.0f} frames/s) on virtual channel {where}")
    _inject(sim, stored, pending_codes, permanent_codes, faults.incomplete_monitors)
    if link is not None:
        if link.is_symlink():
            link.unlink()
        try:
            link.symlink_to(port)
        except OSError as exc:
            if bus is not None:
                bus.stop()
            sim.stop()
            typer.echo(f"error: cannot make {link}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{link} -> {port}")
    typer.echo(f"ELM327 on {port}  VIN {sim.vin}  style {style}  seed {seed}")
    if ecus is not None:
        headers = sorted({c.header for c in ecus.commands})
        typer.echo(f"OBDb: {len(ecus.commands)} mode 22 commands on ECUs {', '.join(headers)}")
    if gps is not None and sim.gps_port is not None:
        _link(gps, sim.gps_port)
        typer.echo(f'NMEA GPS on {gps} -> {sim.gps_port}: [gps] nmea_port = "{gps}"')
    typer.echo(f"connect with: python -c \"import obd; print(obd.OBD('{port}').status())\"")
    try:
        while True:
            time.sleep(5.0)
            s = sim.snapshot()
            typer.echo(
                f"{s.speed_kmh:5.1f} km/h  {s.rpm:5.0f} rpm  gear {s.gear}  "
                f"coolant {s.coolant_temp_c:5.1f} C  fuel {s.fuel_level_pct:4.1f} %  "
                f"({s.latitude:.5f}, {s.longitude:.5f})"
                + (f"  SoC {ecus.battery.soc_pct(s):4.1f} %" if ecus is not None else "")
            )
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        if bus is not None:
            bus.stop()
        sim.stop()
        if can_link is not None and can_link.is_symlink():
            can_link.unlink()
        if link is not None and link.is_symlink():
            link.unlink()


@app.command()
def chaos(
    vehicles: Annotated[int, typer.Option(min=4, help="Agents (each its own process).")] = 6,
    minutes: Annotated[float, typer.Option(min=0.5, help="How long faults are injected.")] = 20.0,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the fault schedule (default: random, printed).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Shorter faults (the CI run).")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the run's directory (logs, outboxes).")] = False,
) -> None:
    """Run agents, broker, cloud and database under a seeded schedule of faults; print what
    was produced, stored, duplicated and lost (exit 1 unless nothing was lost or doubled)."""
    from fleetlink.simulator.chaos.run import run_chaos

    summary = run_chaos(vehicles, minutes, seed, keep=keep, quick=quick)
    typer.echo(summary.render())
    if not summary.ok:
        raise typer.Exit(1)


def _link(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` (replacing an old symlink); exit 2 if it cannot be made."""
    if link.is_symlink():
        link.unlink()
    try:
        link.symlink_to(target)
    except OSError as exc:
        typer.echo(f"error: cannot make {link}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def wear(
    vehicles: Annotated[int, typer.Option(min=1, max=10_000, help="Vehicles in the fleet.")] = 20,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Simulated days.")] = 7,
    seed: Annotated[int, typer.Option(help="Seed of the fleet.")] = 0,
) -> None:
    """Live a fleet with injected wear day by day (time-accelerated); print each vehicle's
    worst day, its services and the failures, with their days."""
    for n, history in enumerate(simulate_fleet(vehicles, days, seed)):
        km = sum(d.km for d in history)
        low = min(d.battery_low_v for d in history)
        high = max(d.coolant_high_c for d in history)
        codes = sorted({c for d in history for c in d.dtcs})
        failures = [f"{f}@day{d.day}" for d in history for f in d.failures]
        services = [d.day for d in history if d.serviced]
        typer.echo(
            f"vehicle {n:3d}  {km:7.0f} km  battery low {low:5.2f} V  coolant high {high:5.1f} C"
            f"  codes {','.join(codes) or '-'}  serviced {services or '-'}"
            f"  failures {', '.join(failures) or '-'}"
        )


@app.command()
def week(
    vehicles: Annotated[int, typer.Option(min=1, max=10_000, help="Vehicles (and drivers).")] = 20,
    days: Annotated[
        int, typer.Option(min=1, max=60, help="Days, ending the day before yesterday.")
    ] = 7,
    trips_per_day: Annotated[
        int, typer.Option(min=1, max=4, help="Trips per vehicle per day.")
    ] = 3,
    trip_minutes: Annotated[float, typer.Option(min=1, max=60, help="Mean trip length.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of vehicles, drivers and routes.")] = 0,
    tenant: Annotated[str, typer.Option(help="Tenant to create (or add to).")] = "demo-week",
) -> None:
    """Store a time-accelerated week of a simulated fleet, with drivers assigned, through the
    ingest's store into FLEETLINK_DATABASE_URL; trips and scores are recomputed before it ends."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from fleetlink.simulator.week import WeekPlan, summarise_week

    first = datetime.now(UTC).date() - timedelta(days=days + 1)
    plan = WeekPlan(vehicles, days, trips_per_day, trip_minutes, seed, first)
    typer.echo(
        f"simulating {vehicles} vehicles x {days} days ({first} to {first + timedelta(days - 1)}) "
        f"for tenant {tenant} ..."
    )
    for line in asyncio.run(summarise_week(tenant, plan)):
        typer.echo(line)


@app.command()
def dataset(
    out: Annotated[Path, typer.Option(help="The .npz file to write.")] = Path("drives.npz"),
    normal: Annotated[int, typer.Option(min=0, max=10_000, help="Normal drives.")] = 120,
    faulty: Annotated[int, typer.Option(min=0, max=1000, help="Drives per fault type.")] = 20,
    minutes: Annotated[float, typer.Option(min=2, max=600, help="Mean drive length.")] = 25.0,
    seed: Annotated[int, typer.Option(help="Seed of every drive (same seed, same file).")] = 0,
) -> None:
    """Generate normal and faulty drives from the vehicle model (as fast as it steps), with
    labelled fault onsets, for training and evaluating anomaly models."""
    from fleetlink.simulator.dataset import FAULTS, generate, plan_drives

    started = time.monotonic()
    specs = plan_drives(normal, faulty, int(minutes * 60), seed)
    data = generate(specs)
    data.save(out)
    hours = data.rows.shape[0] / 3600.0
    typer.echo(
        f"{out}: {len(specs)} drives ({normal} normal, {faulty} of each of {', '.join(FAULTS)}), "
        f"{hours:.1f} engine hours, {len(data.features)} signals at 1 Hz, "
        f"{out.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.0f} s"
    )


@app.command()
def fleet(
    vehicles: Annotated[int, typer.Option(min=1, help="Virtual vehicles (devices)")] = 1000,
    rate: Annotated[
        float, typer.Option(min=0.001, help="Batches per vehicle per second (0.1: one per 10 s)")
    ] = 0.1,
    processes: Annotated[int, typer.Option(min=1, help="Load generator processes")] = 1,
    connections: Annotated[
        int, typer.Option(min=1, help="MQTT connections per process the devices share")
    ] = 4,
    duration: Annotated[float, typer.Option(min=1, help="Measured seconds")] = 60.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds before measuring")] = 10.0,
    resend: Annotated[float, typer.Option(min=1, help="Resend unacked batches after (s)")] = 30.0,
    signals: Annotated[int, typer.Option(min=1, max=64, help="Signals per batch")] = 20,
    samples: Annotated[int, typer.Option(min=1, help="Samples per signal per batch")] = 1,
    tenant: Annotated[str, typer.Option(help="Tenant of the devices")] = "fleet",
    prefix: Annotated[str, typer.Option(help="Device ids are PREFIX000000…")] = "fleet-",
    mqtt_url: Annotated[str, typer.Option(help="Broker URL")] = "mqtt://127.0.0.1:1883",
    provision_url: Annotated[
        str,
        typer.Option(help="Register the tenant and devices in this database first (optional)"),
    ] = "",
) -> None:
    """Run a fleet of virtual devices over the real protocol and report rates, ack latency
    P50/P99 and the CPU of the load generator, ingest, broker and PostgreSQL."""
    from fleetlink.simulator.fleet_load.process import LoadPlan
    from fleetlink.simulator.fleet_load.provision import device_ids
    from fleetlink.simulator.fleet_load.run import run_fleet

    ids = device_ids(prefix, vehicles)
    if provision_url:
        import asyncio

        import asyncpg

        from fleetlink.simulator.fleet_load.provision import provision

        async def register() -> int:
            conn = await asyncpg.connect(provision_url)
            try:
                return await provision(conn, tenant, ids)
            finally:
                await conn.close()

        typer.echo(f"registered {asyncio.run(register()):,} new devices")
    plan = LoadPlan(
        mqtt_url,
        tenant,
        ids,
        period_s=1 / rate,
        duration_s=duration,
        warmup_s=warmup,
        resend_s=resend,
        connections=connections,
        signals=signals,
        samples_per_signal=samples,
    )
    report = run_fleet(plan, processes)
    for line in report.lines():
        typer.echo(line)
    if report.errors:
        raise typer.Exit(1)
