"""Firmware profiles: what the agent reads from each vehicle platform, as validated data.

Each ``<id>.toml`` in this package is one profile (format: :mod:`.schema`). The agent reads
the profile that best fits the vehicle (:mod:`.matching`; ``generic-obd2`` fits any) unless
its configuration names a profile or its own poll groups.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from fleetlink.firmware_profiles.errors import ProfileError
from fleetlink.firmware_profiles.schema import (
    AlertThresholds,
    CanProfile,
    CanSignalMap,
    Match,
    ModelRef,
    ObdAdapter,
    ObdProfile,
    PidRate,
    PollGroup,
    Profile,
)
from fleetlink.shared.validation import describe_errors

if TYPE_CHECKING:
    from fleetlink.firmware_profiles.can import LoadedCan

__all__ = [
    "AUTO_PROFILE",
    "DEFAULT_PROFILE",
    "AlertThresholds",
    "CanProfile",
    "CanSignalMap",
    "Match",
    "ModelRef",
    "ObdAdapter",
    "ObdProfile",
    "PidRate",
    "PollGroup",
    "Profile",
    "ProfileError",
    "load_can_profile",
    "load_profile",
    "profile_folder",
    "profile_ids",
]

DEFAULT_PROFILE = "generic-obd2"
_SHIPPED_DIR = Path(__file__).parent
# The device configuration's word for "choose the profile at connect" (firmware_profiles.matching)
AUTO_PROFILE = "auto"


def profile_ids() -> list[str]:
    """Return the ids of the profiles shipped in this package, sorted."""
    files = resources.files(__name__)
    return sorted(e.name.removesuffix(".toml") for e in files.iterdir() if e.name.endswith(".toml"))


def profile_folder(ref: str | Path) -> Path:
    """Return the folder that profile ``ref``'s relative paths (DBC files, models) start from."""
    if isinstance(ref, Path) or ref.endswith(".toml"):
        return Path(ref).parent
    return _SHIPPED_DIR


def load_profile(ref: str | Path) -> Profile:
    """Return the profile ``ref``: a shipped profile's id, or the path of a TOML file.

    A ``[can]`` section's DBC files are loaded and its mapping checked against them.

    Raises:
        ProfileError: no such profile, unreadable or not TOML, an invalid field, or a DBC
            file that is missing or fails to load; the message names the file and the line
            or field.
    """
    profile, folder, source = _load(ref)
    if profile.can is not None:
        from fleetlink.firmware_profiles.can import load_can

        load_can(profile.can, folder, source)
    return profile


def load_can_profile(ref: str | Path) -> LoadedCan:
    """Return the ``[can]`` section of profile ``ref`` with its DBC files loaded.

    Raises:
        ProfileError: as :func:`load_profile`, or the profile has no ``[can]`` section.
    """
    from fleetlink.firmware_profiles.can import load_can

    profile, folder, source = _load(ref)
    if profile.can is None:
        raise ProfileError(f"{source}: has no [can] section")
    return load_can(profile.can, folder, source)


def _load(ref: str | Path) -> tuple[Profile, Path, str]:
    """Return the validated profile, the folder its relative paths start from, and its name
    for messages."""
    if isinstance(ref, Path) or ref.endswith(".toml"):
        folder = Path(ref).parent
        source = str(ref)
        try:
            text = Path(ref).read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{source}: cannot read: {exc.strerror or exc}") from None
    else:
        folder = _SHIPPED_DIR
        entry = resources.files(__name__) / f"{ref}.toml"
        source = f"firmware profile {ref!r}"
        if not entry.is_file():
            known = ", ".join(profile_ids())
            raise ProfileError(f"{source}: no such profile (shipped: {known})")
        text = entry.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(describe_errors(exc, source)) from None
    if not isinstance(ref, Path) and not ref.endswith(".toml") and profile.id != ref:
        raise ProfileError(f"{source}: id: is {profile.id!r}, not the file's name")
    return profile, folder, source
