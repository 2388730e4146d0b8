"""The simulated engine ECU's fault memory: the freeze frame of the first stored code (mode 02)
and fault scenarios (codes and monitor states to inject) read from TOML files.

The vehicle keeps the state (codes, freeze frame, incomplete monitors); this module encodes
the freeze frame, so the ELM327 interpreter only routes mode 02 requests here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from fleetlink.simulator import j1979
from fleetlink.simulator.readiness import SUPPORTED_MONITORS
from fleetlink.simulator.vehicle import VehicleState


class ScenarioError(ValueError):
    """Raised for a scenario file that cannot be read; the message names the file and field."""


# Freeze frame PIDs (mode 02) and the mode 01 PIDs whose encoders give their bytes.
FREEZE_FRAME_PIDS = (0x02, 0x04, 0x05, 0x06, 0x07, 0x0B, 0x0C, 0x0D, 0x0F, 0x11)


def encode_mode_02(pids: bytes, state: VehicleState) -> bytes | None:
    """Return the positive reply to a mode 02 request ``pids`` (``PID frame``), or None.

    Only frame 0 exists. PID 02 is the code that stored the frame (``00 00`` when none), the
    bitmap PID 00 lists the frame's PIDs, and the others are the mode 01 values captured then.
    """
    if len(pids) != 2 or pids[1] != 0x00:
        return None
    pid = pids[0]
    frame = state.freeze_frame
    if pid == 0x00:
        return bytes((0x42, 0x00, 0x00)) + j1979.support_bitmap(0x00, FREEZE_FRAME_PIDS)
    if pid == 0x02:
        code = j1979.encode_dtc(state.freeze_frame_dtc) if state.freeze_frame_dtc else b"\0\0"
        return bytes((0x42, 0x02, 0x00)) + code
    if frame is None or pid not in FREEZE_FRAME_PIDS:
        return None
    data = j1979.encode_mode_01(pid, frame)
    return None if data is None else bytes((0x42, pid, 0x00)) + data


@dataclass(frozen=True, slots=True)
class Scenario:
    """Codes to inject into a simulated vehicle, read from a TOML file or the command line."""

    stored: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    permanent: tuple[str, ...] = ()
    incomplete_monitors: tuple[str, ...] = ()


def load_scenario(path: Path) -> Scenario:
    """Return the scenario in the TOML file ``path``::

        [dtcs]
        stored = ["P0301", "P0420"]
        pending = ["P0171"]
        permanent = []
        [monitors]
        incomplete = ["catalyst", "evaporative_system"]

    Raises:
        ScenarioError: the file cannot be read, is not TOML, or a field has the wrong shape,
            an invalid code or an unknown monitor.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path} is not TOML: {exc}") from None
    lists: dict[str, tuple[str, ...]] = {}
    for section, key in (
        ("dtcs", "stored"),
        ("dtcs", "pending"),
        ("dtcs", "permanent"),
        ("monitors", "incomplete"),
    ):
        value = data.get(section, {}).get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ScenarioError(f"{path}: [{section}] {key} must be a list of strings")
        lists[f"{section}.{key}"] = tuple(v.upper() if section == "dtcs" else v for v in value)
    for key in ("dtcs.stored", "dtcs.pending", "dtcs.permanent"):
        for code in lists[key]:
            try:
                j1979.encode_dtc(code)
            except ValueError as exc:
                raise ScenarioError(f"{path}: {key}: {exc}") from None
    unknown = sorted(set(lists["monitors.incomplete"]) - SUPPORTED_MONITORS)
    if unknown:
        raise ScenarioError(
            f"{path}: monitors.incomplete: {', '.join(unknown)} not among "
            f"{', '.join(sorted(SUPPORTED_MONITORS))}"
        )
    return Scenario(
        lists["dtcs.stored"],
        lists["dtcs.pending"],
        lists["dtcs.permanent"],
        lists["monitors.incomplete"],
    )
