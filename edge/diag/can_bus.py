"""``fleetlink diag can``: sniff a CAN bus with DBC decoding, record, replay and decode logs.

The bus is a python-can interface chosen by flags (``--interface socketcan --channel can0``,
``--interface slcan --channel /dev/ttyACM0``, ``--interface virtual`` for tests); log formats
are python-can's, chosen by the file's suffix (``.log`` candump, ``.asc``, ``.blf``); DBC
files are read with cantools.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import can
import cantools
import typer
from rich.live import Live
from rich.table import Table

from fleetlink.edge.diag import render
from fleetlink.edge.diag.errors import DiagError, ExitCode

app = typer.Typer(no_args_is_help=True)

LOG_SUFFIXES = (".log", ".asc", ".blf")
_MAX_LOG_CHANNEL = 0xFFFF  # BLF's channel field; python-can writes the number plus one

Interface = Annotated[
    str, typer.Option("--interface", "-i", help="python-can interface: socketcan, slcan, virtual.")
]
Channel = Annotated[
    str, typer.Option("--channel", "-c", help="can0, /dev/ttyACM0 (slcan), a virtual bus name.")
]
Bitrate = Annotated[
    int | None, typer.Option("--bitrate", min=1, help="Bus bit rate (slcan), e.g. 500000.")
]
Dbc = Annotated[Path | None, typer.Option("--dbc", help="A DBC file to decode frames with.")]
Duration = Annotated[
    float | None, typer.Option("--duration", "-t", min=0.0, help="Stop after this many seconds.")
]
Count = Annotated[int | None, typer.Option("--count", "-n", min=1, help="Stop after N frames.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON data (and nothing else).")]


def _run(fn: Any) -> None:
    try:
        fn()
    except DiagError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(int(exc.code)) from None


def load_dbc(path: Path) -> cantools.database.can.Database:
    """Return the DBC database in ``path``.

    Raises:
        DiagError(BAD_FILE): the file is missing or cantools cannot read it as a DBC.
    """
    try:
        db = cantools.database.load_file(str(path), database_format="dbc", strict=False)
    except FileNotFoundError:
        raise DiagError(f"no such DBC file: {path}", ExitCode.BAD_FILE) from None
    except Exception as exc:  # cantools raises parser-specific errors of many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DiagError(f"the DBC {path} does not load: {first}", ExitCode.BAD_FILE) from None
    if not isinstance(db, cantools.database.can.Database):
        raise DiagError(f"{path} is not a CAN DBC database", ExitCode.BAD_FILE)
    return db


@contextmanager
def open_bus(interface: str, channel: str, bitrate: int | None) -> Iterator[can.BusABC]:
    """Yield a python-can bus; raise DiagError(NO_ADAPTER) when it cannot be opened."""
    kwargs: dict[str, Any] = {"interface": interface, "channel": channel}
    if bitrate is not None:
        kwargs["bitrate"] = bitrate
    if interface == "virtual":
        kwargs["receive_own_messages"] = False
    try:
        bus = can.Bus(**kwargs)
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        raise DiagError(
            f"cannot open the CAN interface {interface} on {channel}: {exc}", ExitCode.NO_ADAPTER
        ) from None
    try:
        yield bus
    finally:
        bus.shutdown()


def _parse_id(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise DiagError(f"--id {text!r} is not a CAN id (0x1A0 or 416)", ExitCode.USAGE) from None


@dataclass(slots=True)
class Seen:
    """What was seen of one arbitration id."""

    arbitration_id: int
    name: str | None
    count: int = 0
    last_data: bytes = b""
    signals: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Decoder:
    """Decodes frames with an optional DBC, keeping the ids and signals the user asked for."""

    db: cantools.database.can.Database | None
    ids: frozenset[int] = frozenset()
    signals: frozenset[str] = frozenset()
    seen: dict[int, Seen] = field(default_factory=dict)
    decode_errors: int = 0

    def decode(self, message: can.Message) -> dict[str, Any] | None:
        """Return the frame as a JSON-ready dict, or None when the filters leave it out."""
        if self.ids and message.arbitration_id not in self.ids:
            return None
        name, values = None, {}
        if self.db is not None:
            try:
                definition = self.db.get_message_by_frame_id(message.arbitration_id)
            except KeyError:
                definition = None
            if definition is not None:
                name = definition.name
                try:
                    decoded = definition.decode(bytes(message.data), decode_choices=True)
                    if isinstance(decoded, dict):
                        values = {k: _plain(v) for k, v in decoded.items()}
                except Exception:  # a frame shorter than its DBC definition, a bad multiplexer
                    self.decode_errors += 1
        if self.signals:
            values = {k: v for k, v in values.items() if k in self.signals}
            if not values:
                return None
        seen = self.seen.setdefault(message.arbitration_id, Seen(message.arbitration_id, name))
        seen.count += 1
        seen.last_data = bytes(message.data)
        seen.signals.update(values)
        return {
            "timestamp": message.timestamp,
            "id": f"0x{message.arbitration_id:X}",
            "name": name,
            "data": bytes(message.data).hex(" ").upper(),
            "signals": values,
        }

    def unknown_ids(self) -> list[str]:
        return [f"0x{i:X}" for i, s in sorted(self.seen.items()) if s.name is None]

    def summary(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"0x{s.arbitration_id:X}",
                "name": s.name,
                "count": s.count,
                "data": s.last_data.hex(" ").upper(),
                "signals": s.signals,
            }
            for _, s in sorted(self.seen.items())
        ]


def _plain(value: Any) -> Any:
    """Return a cantools value as JSON can hold it (named choices become their names)."""
    if isinstance(value, int | float | str):
        return value
    return str(value)


def summary_table(decoder: Decoder, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "message", "frames", "last data", "signals"):
        table.add_column(column)
    for row in decoder.summary():
        signals = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["signals"].items()
        )
        table.add_row(row["id"], row["name"] or "unknown", str(row["count"]), row["data"], signals)
    return table


def profile_dbc(profile: str) -> cantools.database.can.Database:
    """Return the DBC database of the firmware profile ``profile`` (a shipped id or a .toml).

    Raises:
        DiagError(BAD_FILE): the profile does not load or has no ``[can]`` section.
    """
    from fleetlink.firmware_profiles import ProfileError, load_can_profile

    try:
        return load_can_profile(Path(profile) if profile.endswith(".toml") else profile).database
    except ProfileError as exc:
        raise DiagError(str(exc), ExitCode.BAD_FILE) from None


def _decoder(
    dbc: Path | None, profile: str | None, ids: list[str] | None, signal: list[str] | None
) -> Decoder:
    if dbc is not None and profile is not None:
        raise DiagError("give --dbc or --profile, not both", ExitCode.USAGE)
    db = load_dbc(dbc) if dbc is not None else profile_dbc(profile) if profile else None
    if signal and db is None:
        raise DiagError("--signal needs a DBC (--dbc or --profile) to decode", ExitCode.USAGE)
    return Decoder(db, frozenset(_parse_id(i) for i in ids or []), frozenset(signal or []))


def _frames(bus: can.BusABC, duration: float | None, count: int | None) -> Iterable[can.Message]:
    deadline = None if duration is None else time.monotonic() + duration
    received = 0
    try:
        while (count is None or received < count) and (
            deadline is None or time.monotonic() < deadline
        ):
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            message = bus.recv(timeout=wait)
            if message is None:
                continue
            received += 1
            yield message
    except KeyboardInterrupt:
        return


@app.command("sniff")
def sniff(
    interface: Interface = "socketcan",
    channel: Channel = "can0",
    bitrate: Bitrate = None,
    dbc: Dbc = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="Decode with this firmware profile's DBC files."),
    ] = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="Only this arbitration id (repeatable).")
    ] = None,
    signal: Annotated[
        list[str] | None,
        typer.Option("--signal", help="Only frames with this signal (repeatable)."),
    ] = None,
    duration: Duration = None,
    count: Count = None,
    as_json: AsJson = False,
) -> None:
    """Watch the bus: each id with its DBC message name (or unknown), frame count, last data
    and decoded signals, until Ctrl-C, --duration or --count."""

    def body() -> None:
        decoder = _decoder(dbc, profile, ids, signal)
        with open_bus(interface, channel, bitrate) as bus:
            out = render.console()
            if as_json or not out.is_terminal:
                for message in _frames(bus, duration, count):
                    decoder.decode(message)
                if not as_json:
                    out.print(summary_table(decoder, f"CAN on {channel}"))
            else:
                with Live(summary_table(decoder, "CAN"), console=out, auto_refresh=False) as shown:
                    for message in _frames(bus, duration, count):
                        if decoder.decode(message) is not None:
                            shown.update(summary_table(decoder, f"CAN on {channel}"), refresh=True)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "channel": channel,
                        "ids": decoder.summary(),
                        "unknown_ids": decoder.unknown_ids(),
                        "decode_errors": decoder.decode_errors,
                    },
                    indent=2,
                )
            )

    _run(body)


def _loggable(message: can.Message) -> can.Message:
    """Return ``message`` with a channel every log format can hold.

    Logs keep a frame's channel as a number (BLF in 16 bits), taken from the channel name's
    trailing digits; a bus whose name ends in a larger number (python-can's virtual buses take
    any name) is written as the format's default channel rather than failing mid-recording.
    """
    number = can.util.channel2int(message.channel)
    if number is not None and not 0 <= number < _MAX_LOG_CHANNEL:
        message.channel = None
    return message


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in LOG_SUFFIXES:
        raise DiagError(
            f"{path}: unknown log format {path.suffix or '(no suffix)'!r}; use .log (candump), "
            ".asc or .blf",
            ExitCode.BAD_FILE,
        )


@app.command("record")
def record(
    file: Annotated[Path, typer.Argument(help="Log file: .log (candump), .asc or .blf.")],
    interface: Interface = "socketcan",
    channel: Channel = "can0",
    bitrate: Bitrate = None,
    duration: Duration = None,
    count: Count = None,
    as_json: AsJson = False,
) -> None:
    """Record the bus's frames to FILE in the format its suffix names."""

    def body() -> None:
        _check_suffix(file)
        written = 0
        with open_bus(interface, channel, bitrate) as bus:
            try:
                writer = can.Logger(str(file))
            except OSError as exc:
                raise DiagError(
                    f"cannot write {file}: {exc.strerror or exc}", ExitCode.BAD_FILE
                ) from None
            try:
                for message in _frames(bus, duration, count):
                    writer.on_message_received(_loggable(message))
                    written += 1
            finally:
                writer.stop()
        if as_json:
            typer.echo(json.dumps({"file": str(file), "frames": written}, indent=2))
        else:
            typer.echo(f"recorded {written} frames to {file}")

    _run(body)


def read_log(path: Path) -> Iterator[can.Message]:
    """Yield the frames of a candump/ASC/BLF log.

    Raises:
        DiagError(BAD_FILE): no such file, an unknown suffix, or content python-can cannot read.
    """
    _check_suffix(path)
    if not path.is_file():
        raise DiagError(f"no such log file: {path}", ExitCode.BAD_FILE)
    try:
        for message in can.LogReader(str(path)):
            if not message.is_error_frame:
                yield message
    except (ValueError, IndexError, KeyError, UnicodeDecodeError, can.CanError) as exc:
        raise DiagError(
            f"{path} is not a readable {path.suffix} log: {exc}", ExitCode.BAD_FILE
        ) from None
    except Exception as exc:  # the BLF reader raises struct and zlib errors on garbage
        raise DiagError(
            f"{path} is not a readable {path.suffix} log: {exc}", ExitCode.BAD_FILE
        ) from None


@app.command("replay")
def replay(
    file: Annotated[Path, typer.Argument(help="Log file: .log (candump), .asc or .blf.")],
    interface: Interface = "socketcan",
    channel: Channel = "can0",
    bitrate: Bitrate = None,
    fast: Annotated[
        bool, typer.Option("--fast", help="Send at once, ignoring timestamps.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Send a recorded log's frames on the bus, with their original timing unless --fast."""

    def body() -> None:
        frames = list(read_log(file))
        sent = 0
        with open_bus(interface, channel, bitrate) as bus:
            source: Iterable[can.Message] = frames if fast else can.MessageSync(frames)
            for message in source:
                try:
                    bus.send(message)
                except can.CanError as exc:
                    raise DiagError(
                        f"sending on {channel} failed after {sent} frames: {exc}"
                    ) from None
                sent += 1
        if as_json:
            typer.echo(json.dumps({"file": str(file), "frames": sent}, indent=2))
        else:
            typer.echo(f"replayed {sent} frames from {file} on {channel}")

    _run(body)


@app.command("decode")
def decode(
    file: Annotated[Path, typer.Argument(help="Log file: .log (candump), .asc or .blf.")],
    dbc: Dbc = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="Decode with this firmware profile's DBC files."),
    ] = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="Only this arbitration id (repeatable).")
    ] = None,
    signal: Annotated[
        list[str] | None, typer.Option("--signal", help="Only this signal (repeatable).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Print the decoded signals of every frame of a recorded log."""

    def body() -> None:
        decoder = _decoder(dbc, profile, ids, signal)
        frames = [f for f in (decoder.decode(m) for m in read_log(file)) if f is not None]
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "file": str(file),
                        "frames": frames,
                        "unknown_ids": decoder.unknown_ids(),
                        "decode_errors": decoder.decode_errors,
                    },
                    indent=2,
                )
            )
            return
        out = render.console()
        for f in frames:
            values = " ".join(f"{k}={v}" for k, v in f["signals"].items())
            out.print(f"{f['timestamp']:.6f} {f['id']:>6} {f['name'] or 'unknown':<24} {values}")
        out.print(summary_table(decoder, f"{file.name}: {len(frames)} frames"))

    _run(body)
