"""A profile's ``[can]`` section made usable: its DBC files loaded, its mapping checked.

:func:`load_can` is what start-up calls: a DBC that cannot be read or parsed, a mapping
that names a message or signal no DBC has, or a mapping value the DBC does not know all
raise :class:`ProfileError` naming the file and the line or field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleetlink.firmware_profiles.errors import ProfileError
from fleetlink.firmware_profiles.schema import CanProfile, CanSignalMap
from fleetlink.firmware_profiles.transform import (
    Transform,
    TransformError,
    compile_mapping,
    compile_math,
)
from fleetlink.shared.signals import by_name

if TYPE_CHECKING:
    from cantools.database import Database, Message


@dataclass(frozen=True, slots=True)
class SignalRule:
    """One mapped signal, ready to apply: where it comes from and how it is downsampled."""

    message: str
    signal: str
    signal_id: int
    interval_ms: int
    on_change: bool
    deadband: float
    transform: Transform | None


@dataclass(frozen=True)
class LoadedCan:
    """The DBC database of a profile and its signal rules, grouped by message name."""

    settings: CanProfile
    database: Database
    dbc_files: tuple[Path, ...]
    rules: dict[str, tuple[SignalRule, ...]]

    def messages(self) -> list[Message]:
        """Return the DBC messages that at least one rule reads."""
        return [self.database.get_message_by_name(name) for name in self.rules]


def load_dbc(path: Path, *, strict: bool = True) -> Database:
    """Return the DBC file at ``path`` parsed by cantools.

    Raises:
        ProfileError: the file is missing or unreadable, or cantools rejects it; the
            message names the file and, for a syntax error, the line.
    """
    import cantools

    try:
        text = path.read_text(encoding="cp1252")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the DBC file: {exc.strerror or exc}") from None
    try:
        database = cantools.database.Database(strict=strict)
        database.add_dbc_string(text)
    except Exception as exc:  # a parse error (with its line), or cantools' semantic errors
        line = getattr(exc, "line", None) or getattr(exc.__cause__, "line", None)
        where = f"{path}:{line}" if line else str(path)
        raise ProfileError(f"{where}: not a valid DBC file: {exc}") from None
    return database


def load_can(settings: CanProfile, profile_dir: Path, source: str) -> LoadedCan:
    """Load the DBC files of ``settings`` (paths relative to ``profile_dir``) and check its
    mapping; ``source`` names the profile in errors.

    Raises:
        ProfileError: a DBC file fails to load, or ``can.signals[i]`` names a message or
            signal the DBC files do not have, or a mapping key the signal does not know.
    """
    import cantools

    database = cantools.database.Database()
    files = []
    for index, name in enumerate(settings.dbc):
        path = profile_dir / name
        if not path.is_file():
            raise ProfileError(f"{source}: can.dbc[{index}]: no DBC file {path}")
        loaded = load_dbc(path, strict=False)  # opendbc files overlap signals; decoding copes
        for message in loaded.messages:
            database.messages.append(message)
        files.append(path)
    database.refresh()
    rules: dict[str, list[SignalRule]] = {}
    for index, mapping in enumerate(settings.signals):
        field = f"{source}: can.signals[{index}]"
        rule = _rule(database, mapping, field)
        rules.setdefault(rule.message, []).append(rule)
    return LoadedCan(settings, database, tuple(files), {k: tuple(v) for k, v in rules.items()})


def _rule(database: Database, mapping: CanSignalMap, field: str) -> SignalRule:
    try:
        message = database.get_message_by_name(mapping.message)
    except KeyError:
        raise ProfileError(
            f"{field}.message: no message {mapping.message!r} in the DBC files"
        ) from None
    try:
        signal = message.get_signal_by_name(mapping.signal)
    except KeyError:
        raise ProfileError(
            f"{field}.signal: message {mapping.message!r} has no signal {mapping.signal!r}"
        ) from None
    transform: Transform | None = None
    if mapping.transform is not None and mapping.transform.math is not None:
        others = {s.name for s in message.signals}
        try:
            transform = compile_math(mapping.transform.math, others)
        except TransformError as exc:
            raise ProfileError(f"{field}.transform.math: {exc}") from None
    elif mapping.transform is not None and mapping.transform.mapping is not None:
        names = {str(name): float(value) for value, name in (signal.choices or {}).items()}
        table: dict[float, float] = {}
        for key, value in mapping.transform.mapping.items():
            if key in names:
                table[names[key]] = value
                continue
            try:
                table[float(key)] = value
            except ValueError:
                raise ProfileError(
                    f"{field}.transform.mapping: {key!r} is neither a number nor one of "
                    f"{sorted(names)}"
                ) from None
        transform = compile_mapping(table)
    return SignalRule(
        message.name,
        signal.name,
        by_name(mapping.vss).id,
        mapping.interval_ms,
        mapping.on_change,
        mapping.deadband,
        transform,
    )
