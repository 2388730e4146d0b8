"""``fleetlink diag`` commands: scan, dtc, freeze-frame, monitors, live, pids, report, can.

Each command prints a table for people or, with ``--json``, one JSON document and nothing
else on stdout (shapes and exit codes in docs/guides/technician.md). Every failure is one line
on stderr, ``error: …``, and an exit code from :class:`ExitCode`, never a traceback.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.live import Live

from fleetlink.edge.diag import reads, render
from fleetlink.edge.diag import report as reports
from fleetlink.edge.diag.can_bus import app as can_app
from fleetlink.edge.diag.errors import DiagError, ExitCode
from fleetlink.edge.diag.session import Session, connect
from fleetlink.edge.link.elm327 import Elm327Link

app = typer.Typer(no_args_is_help=True, help="Technician's diagnostics over an OBD adapter.")
app.add_typer(can_app, name="can", help="Sniff, record, replay and decode CAN traffic.")

Port = Annotated[
    str | None,
    typer.Option(
        "--port",
        "-p",
        help="Adapter port (/dev/ttyUSB0, a /dev/serial/by-id link, any symlink); "
        "omitted: every serial port is tried.",
    ),
]
Baudrate = Annotated[
    int | None,
    typer.Option(
        "--baudrate",
        "-b",
        min=1,
        help="Adapter baud rate; omitted: 38400, 9600, 115200, 57600, 19200, 230400 are tried.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON data (and nothing else).")]


def run(fn: Callable[[], None]) -> None:
    """Run a command body; a DiagError becomes one line on stderr and its exit code."""
    try:
        fn()
    except DiagError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(int(exc.code)) from None


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _spinner(text: str, as_json: bool) -> AbstractContextManager[Any]:
    """Return a spinner on stderr while a slow step runs (only on a terminal)."""
    err = render.console(stderr=True)
    if as_json or not err.is_terminal:
        return nullcontext()
    return err.status(text)


@contextmanager
def _session(port: str | None, baudrate: int | None, as_json: bool) -> Iterator[Session]:
    what = f"Opening {port}" if port else "Looking for the adapter on every serial port"
    with ExitStack() as stack:
        with _spinner(f"{what} (baud rates, protocol search)…", as_json):
            session = stack.enter_context(connect(port, baudrate))
        yield session


def _scan_data(session: Session) -> dict[str, Any]:
    data = {"port": session.port, **reads.scan(session.link)}
    data["tried"] = [a.as_json() for a in session.tried]
    return data


@app.command("scan")
def scan(port: Port = None, baudrate: Baudrate = None, as_json: AsJson = False) -> None:
    """Find the adapter; show its version, the protocol, battery voltage, the ECUs that answer,
    the VIN decoded offline and the supported PIDs."""

    def body() -> None:
        with _session(port, baudrate, as_json) as session:
            data = _scan_data(session)
        if as_json:
            emit_json(data)
            return
        out = render.console()
        out.print(render.tried_table(data["tried"]))
        out.print(render.scan_table(data))

    run(body)


@app.command("info", hidden=True)
def info(port: Port = None, baudrate: Baudrate = None, as_json: AsJson = False) -> None:
    """The same as scan (kept for scripts written for earlier versions)."""
    scan(port, baudrate, as_json)


dtc_app = typer.Typer(help="Trouble codes: stored (03), pending (07), permanent (0A).")
app.add_typer(dtc_app, name="dtc")


def _print_codes(data: dict[str, Any]) -> None:
    render.console().print(render.codes_table(data))
    for name in data["unsupported"]:
        typer.echo(f"note: the vehicle does not report {name} codes", err=True)
    for warning in data["warnings"]:
        typer.echo(f"warning: {warning}", err=True)


@dtc_app.callback(invoke_without_command=True)
def dtc(
    ctx: typer.Context, port: Port = None, baudrate: Baudrate = None, as_json: AsJson = False
) -> None:
    """Stored, pending and permanent trouble codes with descriptions, the MIL and its count."""
    if ctx.invoked_subcommand is not None:
        return

    def body() -> None:
        with _session(port, baudrate, as_json) as session:
            data = {"port": session.port, **reads.trouble_codes(session.link)}
        if as_json:
            emit_json(data)
        else:
            _print_codes(data)

    run(body)


@dtc_app.command("clear")
def dtc_clear(
    port: Port = None,
    baudrate: Baudrate = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Clear without asking.")] = False,
    as_json: AsJson = False,
) -> None:
    """Clear the codes, freeze frames and readiness monitors (mode 04), after confirmation."""

    def body() -> None:
        with _session(port, baudrate, as_json) as session:
            before = reads.trouble_codes(session.link)
            stored = [c["code"] for c in before["codes"] if c["status"] != "permanent"]
            typer.echo(
                "warning: clearing resets every readiness monitor; the vehicle fails an "
                "emissions inspection until they complete again (several drive cycles)",
                err=True,
            )
            if not yes:
                typer.confirm(
                    f"Clear {len(stored)} codes ({', '.join(stored) or 'none'}) and the freeze "
                    f"frame on {session.port}?",
                    abort=True,
                    err=True,
                )
            reads.clear_codes(session.link)
            after = reads.trouble_codes(session.link)
        data = {
            "port": session.port,
            "cleared": True,
            "codes_before": before["codes"],
            "codes_after": after["codes"],
            "monitors_reset": True,
        }
        if as_json:
            emit_json(data)
            return
        typer.echo(
            f"cleared: the ECU confirmed (44); {len(stored)} stored and pending codes cleared"
        )
        left = [c["code"] for c in after["codes"]]
        if left:
            typer.echo(
                f"still reported: {', '.join(left)} (permanent codes stay until the monitor passes)"
            )

    run(body)


@app.command("freeze-frame")
def freeze_frame(port: Port = None, baudrate: Baudrate = None, as_json: AsJson = False) -> None:
    """The values the engine ECU stored (mode 02) when it set the code that stored them."""

    def body() -> None:
        with _session(port, baudrate, as_json) as session:
            data = {"port": session.port, **reads.freeze_frame(session.link)}
        if as_json:
            emit_json(data)
        else:
            render.console().print(render.freeze_frame_table(data))

    run(body)


@app.command("monitors")
def monitors(port: Port = None, baudrate: Baudrate = None, as_json: AsJson = False) -> None:
    """Readiness monitors since the codes were cleared (PID 01) and this drive cycle (PID 41):
    complete, incomplete or not supported, for spark or compression ignition."""

    def body() -> None:
        with _session(port, baudrate, as_json) as session:
            data = {"port": session.port, **reads.monitors(session.link)}
        if as_json:
            emit_json(data)
        else:
            render.console().print(render.monitors_table(data))

    run(body)


@app.command("pids")
def pids(port: Port = None, baudrate: Baudrate = None, as_json: AsJson = False) -> None:
    """Supported mode 01 PIDs with python-obd's names, units and the catalog's VSS names."""

    def body() -> None:
        with _session(port, baudrate, as_json) as session:
            rows = reads.pids(session.link)
        if as_json:
            emit_json({"port": session.port, "pids": rows})
        else:
            render.console().print(render.pids_table(rows))

    run(body)


def _read_pass(link: Elm327Link, chosen: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    readings = []
    for command, signal_name in chosen:
        reading = link.query(command)
        readings.append(
            {
                "command": command,
                "name": signal_name,
                "value": reading.value,
                "unit": reads.unit_of(command, reading.unit),
                "time_ms": reading.time_ms,
            }
        )
    return readings


class _Recorder:
    """Writes each live reading as a CSV row or a JSON line, chosen by the file's suffix."""

    FIELDS = ("time_ms", "command", "name", "value", "unit")

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise DiagError(f"--record {path}: the suffix must be .csv or .jsonl", ExitCode.USAGE)
        try:
            self._file: IO[str] = path.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise DiagError(
                f"cannot write {path}: {exc.strerror or exc}", ExitCode.BAD_FILE
            ) from None
        self._csv = csv.DictWriter(self._file, self.FIELDS) if suffix == ".csv" else None
        if self._csv is not None:
            self._csv.writeheader()
        self.rows = 0

    def write(self, readings: list[dict[str, Any]]) -> None:
        for r in readings:
            row = {k: r[k] for k in self.FIELDS}
            if self._csv is not None:
                self._csv.writerow(row)
            else:
                self._file.write(json.dumps(row) + "\n")
            self.rows += 1
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@app.command("live")
def live(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            help="PIDs (0C, 010C), command names (RPM) or catalog signals (Vehicle.Speed); "
            "none: every supported catalog signal.",
            show_default=False,
        ),
    ] = None,
    port: Port = None,
    baudrate: Baudrate = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            min=1,
            help="Passes to read; omitted: until Ctrl-C on a terminal, else one.",
        ),
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Also write every reading to FILE.csv/.jsonl.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """A live table of values with units, refreshing in place, and its update rate."""

    def body() -> None:
        recorder = _Recorder(record) if record is not None else None
        # Until Ctrl-C only where someone watches the table refresh; one pass into a pipe.
        watching = render.console().is_terminal and not as_json
        passes = count if count is not None else (None if watching else 1)
        done = 0
        readings: list[dict[str, Any]] = []
        rate_hz: float | None = None
        try:
            with _session(port, baudrate, as_json) as session:
                chosen = reads.resolve_live(session.link, items or [])
                started = time.monotonic()
                out = render.console()
                # In place on a terminal; elsewhere (a pipe, a file) the last table once.
                view = (
                    Live(render.live_table([], None, 0), console=out, auto_refresh=False)
                    if out.is_terminal and not as_json
                    else nullcontext()
                )
                with view as shown:
                    try:
                        while passes is None or done < passes:
                            readings = _read_pass(session.link, chosen)
                            done += 1
                            elapsed = time.monotonic() - started
                            rate_hz = done / elapsed if elapsed > 0 else None
                            if recorder is not None:
                                recorder.write(readings)
                            if shown is not None:
                                shown.update(
                                    render.live_table(readings, rate_hz, done), refresh=True
                                )
                    except KeyboardInterrupt:
                        pass
                if not as_json and not out.is_terminal:
                    out.print(render.live_table(readings, rate_hz, done))
        finally:
            if recorder is not None:
                recorder.close()
        if as_json:
            emit_json(
                {
                    "port": session.port,
                    "passes": done,
                    "rate_hz": rate_hz,
                    "recorded_rows": None if recorder is None else recorder.rows,
                    "signals": [
                        {k: r[k] for k in ("name", "command", "value", "unit")} for r in readings
                    ],
                }
            )

    run(body)


@app.command("report")
def report(
    port: Port = None,
    baudrate: Baudrate = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to save: PATH.json and PATH.html; omitted: report-<VIN>-<time> here.",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(envvar="FLEETLINK_API_URL", help="The cloud's URL (http://host:8080)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FLEETLINK_API_TOKEN",
            help="An API token; with one the report is attached to the vehicle's record.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML with api_url and api_token (default ~/.config/fleetlink/diag.toml)."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Read everything (scan, codes, freeze frame, monitors, key live values), save it as JSON
    and HTML, and upload it to the vehicle's diagnostic history when a token is configured."""

    def body() -> None:
        target = reports.cloud_target(api_url, token, config)
        with _session(port, baudrate, as_json) as session:
            link = session.link
            with _spinner("Reading codes, freeze frame, monitors and live values…", as_json):
                scanned = _scan_data(session)
                codes = reads.trouble_codes(link)
                try:
                    frame: dict[str, Any] | None = reads.freeze_frame(link)
                except DiagError:
                    frame = None
                try:
                    readiness: dict[str, Any] | None = reads.monitors(link)
                except DiagError:
                    readiness = None
                key = [
                    (c, reads.signal_name(c)) for c in reads.KEY_LIVE_COMMANDS if link.supports(c)
                ]
                live_values = [
                    {k: r[k] for k in ("name", "command", "value", "unit")}
                    for r in _read_pass(link, key)
                ]
        document = reports.build(scanned, codes, frame, readiness, live_values)
        stamp = document["created_at"].replace(":", "").replace("-", "")[:15]
        base = output or Path(f"report-{document['vin'] or 'unknown'}-{stamp}")
        json_path, html_path = reports.save(document, base)
        uploaded = None
        upload_error: DiagError | None = None
        if target is not None:
            with _spinner(f"Uploading to {target.api_url}…", as_json):
                try:
                    uploaded = reports.upload(document, target)
                except DiagError as exc:
                    upload_error = exc
        data = {
            "json": str(json_path),
            "html": str(html_path),
            "vin": document["vin"],
            "codes": list(
                dict.fromkeys(c["code"] for c in document["codes"] if c["status"] != "permanent")
            ),
            "uploaded": uploaded,
        }
        if as_json:
            emit_json(data)
        else:
            typer.echo(f"saved {json_path} and {html_path}")
            if uploaded is not None:
                typer.echo(f"uploaded: report {uploaded['id']} on vehicle {uploaded['vehicle_id']}")
            elif target is None:
                typer.echo("not uploaded: no API token (--token, FLEETLINK_API_TOKEN or config)")
        if upload_error is not None:
            raise upload_error

    run(body)
