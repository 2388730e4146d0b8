"""Read OBDb v3 signalset JSON into commands and signals, with model-year filters.

A vehicle's signals are a chain of signalsets, most specific first (model, make, SAEJ1979): a
command defined by a more specific signalset hides the same command (header, receive address,
request) of a less specific one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetlink.firmware_profiles.obdb.names import canonical_name


class SignalsetError(ValueError):
    """A signalset file that cannot be read or does not follow the OBDb v3 format."""


@dataclass(frozen=True)
class YearFilter:
    """OBDb ``filter``: the model years a command applies to (``from``, ``to``, ``years``)."""

    start: int | None = None
    end: int | None = None
    years: frozenset[int] = frozenset()

    def admits(self, year: int | None) -> bool:
        """``from`` < ``to`` is a closed range; otherwise each bound is open-ended (a union)."""
        if year is None or (self.start is None and self.end is None and not self.years):
            return True
        if year in self.years:
            return True
        if self.start is not None and self.end is not None and self.start < self.end:
            return self.start <= year <= self.end
        return (self.start is not None and year >= self.start) or (
            self.end is not None and year <= self.end
        )


@dataclass(frozen=True)
class Signal:
    """One signal of a command's reply: where its bits are and how they scale."""

    id: str
    name: str
    path: str | None
    suggested_metric: str | None
    bix: int
    length: int
    signed: bool = False
    little_endian: bool = False
    mul: float = 1.0
    div: float = 1.0
    add: float = 0.0
    min: float = 0.0
    max: float | None = None
    null_min: float | None = None
    null_max: float | None = None
    value_map: Mapping[int, str] = field(default_factory=dict)
    unit: str | None = None

    @property
    def canonical(self) -> str:
        return canonical_name(self.id, self.path, self.suggested_metric)

    def raw(self, payload: bytes) -> int | None:
        """The signal's raw bits (MSB first from ``bix``; ``blsb`` reverses its bytes first), or
        ``None`` if the payload is too short."""
        end = self.bix + self.length
        if end > len(payload) * 8:
            return None
        if self.little_endian and self.length > 8:
            first = self.bix // 8
            last = min(first + (self.length + 7) // 8, len(payload))
            payload = payload[:first] + payload[first:last][::-1] + payload[last:]
        whole = int.from_bytes(payload, "big")
        value = (whole >> (len(payload) * 8 - end)) & ((1 << self.length) - 1)
        if self.signed and value >= 1 << (self.length - 1):
            value -= 1 << self.length
        return value

    def scale(self, raw: int) -> tuple[float | str | None, bool]:
        """(value, in_range): the physical value, ``None`` for a null reading or an unmapped
        code, or the map's name."""
        if self.value_map:
            name = self.value_map.get(raw)
            return name, name is not None
        value = raw * self.mul / self.div + self.add
        if (self.null_min is not None and value <= self.null_min) or (
            self.null_max is not None and value >= self.null_max
        ):
            return None, True
        if self.max is not None and self.max > self.min and not self.min <= value <= self.max:
            return max(self.min, min(value, self.max)), False
        return value, True


@dataclass(frozen=True)
class Command:
    """One request to one ECU and the signals of its reply."""

    header: str
    receive: str | None
    service: int
    pid: int
    pid_bytes: int
    frequency: float
    signals: tuple[Signal, ...]
    filter: YearFilter = YearFilter()

    @property
    def key(self) -> tuple[str, str | None, int, int]:
        return (self.header, self.receive, self.service, self.pid)

    @property
    def reply_from(self) -> str:
        """The CAN id the reply comes from: ``rax`` (for a 29-bit header, ``18DAF1`` + its last
        byte), else the header + 8 for 11-bit ids and ``18DAF1`` + the target byte for 29-bit
        ones."""
        if self.receive is not None:
            if len(self.header) == 4:
                return f"18DAF1{self.receive[-2:]}"
            return self.receive
        if len(self.header) == 3:
            return f"{int(self.header, 16) + 8:03X}"
        return f"18DAF1{self.header[-2:]}"

    def request(self) -> str:
        return f"{self.service:02X}{self.pid:0{self.pid_bytes * 2}X}"


def _number(fmt: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = fmt.get(key, default)
    if value is not None and not isinstance(value, int | float):
        raise SignalsetError(f"fmt.{key} must be a number, got {value!r}")
    return None if value is None else float(value)


def _value_map(raw: Mapping[str, Any]) -> dict[int, str]:
    out: dict[int, str] = {}
    for key, entry in raw.items():
        name = entry.get("value") if isinstance(entry, Mapping) else entry
        out[int(key)] = str(name)
    return out


def _signal(raw: Mapping[str, Any]) -> Signal:
    try:
        fmt = raw["fmt"]
        return Signal(
            id=str(raw["id"]),
            name=str(raw.get("name", raw["id"])),
            path=raw.get("path"),
            suggested_metric=raw.get("suggestedMetric"),
            bix=int(fmt.get("bix", 0)),
            length=int(fmt["len"]),
            signed=bool(fmt.get("sign", False)),
            little_endian=bool(fmt.get("blsb", False)),
            mul=_number(fmt, "mul", 1.0) or 1.0,
            div=_number(fmt, "div", 1.0) or 1.0,
            add=_number(fmt, "add", 0.0) or 0.0,
            min=_number(fmt, "min", 0.0) or 0.0,
            max=_number(fmt, "max", None),
            null_min=_number(fmt, "nullmin", None),
            null_max=_number(fmt, "nullmax", None),
            value_map=_value_map(fmt.get("map", {})),
            unit=fmt.get("unit"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SignalsetError(f"signal {raw.get('id', '?')}: {exc}") from None


def parse_command(raw: Mapping[str, Any]) -> Command:
    """One command object of a signalset's ``commands`` list."""
    try:
        ((service_hex, pid_hex),) = raw["cmd"].items()
        flt = raw.get("filter", {})
        return Command(
            header=str(raw["hdr"]).upper(),
            receive=str(raw["rax"]).upper() if "rax" in raw else None,
            service=int(service_hex, 16),
            pid=int(pid_hex, 16),
            pid_bytes=len(pid_hex) // 2,
            frequency=float(raw.get("freq", 1)),
            signals=tuple(_signal(s) for s in raw["signals"]),
            filter=YearFilter(
                start=flt.get("from"), end=flt.get("to"), years=frozenset(flt.get("years", ()))
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SignalsetError(
            f"command {raw.get('hdr', '?')} {raw.get('cmd', '?')}: {exc}"
        ) from None


def load_signalset(path: Path) -> tuple[Command, ...]:
    """Every command of one OBDb v3 signalset file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignalsetError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("commands"), list):
        raise SignalsetError(f"{path}: not an OBDb v3 signalset (no 'commands' list)")
    return tuple(parse_command(c) for c in data["commands"])


@dataclass(frozen=True)
class VehicleSignals:
    """The commands one vehicle of one model year answers, from its signalset chain."""

    commands: tuple[Command, ...]

    @classmethod
    def from_chain(cls, chain: Iterable[tuple[Command, ...]], year: int | None) -> VehicleSignals:
        """``chain`` most specific first; commands filtered to ``year`` (``None``: all)."""
        seen: set[tuple[str, str | None, int, int]] = set()
        kept: list[Command] = []
        for commands in chain:
            level = [c for c in commands if c.filter.admits(year) and c.key not in seen]
            seen.update(c.key for c in level)
            kept.extend(level)
        return cls(tuple(kept))

    @classmethod
    def from_files(cls, paths: Iterable[Path], year: int | None) -> VehicleSignals:
        return cls.from_chain((load_signalset(p) for p in paths), year)
