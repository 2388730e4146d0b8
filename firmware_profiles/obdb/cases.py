"""Run an OBDb test-case folder (``<year>/commands/*.yaml``) against a signalset chain."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetlink.firmware_profiles.obdb.decode import DecodeStats, decode_reply
from fleetlink.firmware_profiles.obdb.signalset import Command, SignalsetError, VehicleSignals


@dataclass(frozen=True)
class CaseFailure:
    year: int
    command_id: str
    response: str
    problems: tuple[str, ...]


@dataclass
class CaseReport:
    passed: int
    failures: list[CaseFailure]
    stats: DecodeStats

    @property
    def failed(self) -> int:
        return len(self.failures)


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return bool(expected == actual) or str(expected) == str(actual)
    if not isinstance(actual, int | float):
        return False
    return math.isclose(actual, expected, rel_tol=1e-5, abs_tol=1e-5)


def _year_dirs(cases_dir: Path) -> Iterator[tuple[int, Path]]:
    for child in sorted(cases_dir.iterdir()):
        if child.is_dir() and child.name.isdigit() and (child / "commands").is_dir():
            yield int(child.name), child / "commands"


def run_cases(cases_dir: Path, chain: Sequence[tuple[Command, ...]]) -> CaseReport:
    """Decode every recorded response and compare with its expected values."""
    if not cases_dir.is_dir():
        raise SignalsetError(f"{cases_dir}: not a folder")
    report = CaseReport(passed=0, failures=[], stats=DecodeStats())
    for year, commands_dir in _year_dirs(cases_dir):
        vehicle = VehicleSignals.from_chain(chain, year)
        for case_file in sorted(commands_dir.glob("*.yaml")):
            try:
                data = yaml.safe_load(case_file.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise SignalsetError(f"{case_file}: {exc}") from None
            command_id = str(data.get("command_id", case_file.stem))
            for case in data.get("test_cases", []):
                response = str(case.get("response", ""))
                decoded = decode_reply(vehicle, response)
                report.stats.add(decoded.stats)
                problems = tuple(
                    f"{sid}: expected {want!r}, got "
                    + (repr(decoded.values[sid]) if sid in decoded.values else "nothing")
                    for sid, want in (case.get("expected_values") or {}).items()
                    if sid not in decoded.values or not _matches(want, decoded.values[sid])
                )
                if problems:
                    report.failures.append(CaseFailure(year, command_id, response, problems))
                else:
                    report.passed += 1
    return report
