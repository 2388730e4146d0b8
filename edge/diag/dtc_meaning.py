"""What a trouble code means: its system, whether SAE J2012 defines it or the maker does, and
the generic description (python-obd's table of SAE J2012 codes)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetlink.edge.link.python_obd import obd

_SYSTEMS = {"P": "powertrain", "C": "chassis", "B": "body", "U": "network"}


@dataclass(frozen=True, slots=True)
class Meaning:
    code: str
    system: str
    range: str  # "generic", "manufacturer-specific" or "reserved"
    description: str


def code_range(code: str) -> str:
    """Return which SAE J2012 range ``code`` (``P0301``) is in.

    P0, P2 and P34-P3F are generic, P1 and P30-P33 the manufacturer's; in C, B and U the
    second character 0 is generic, 1 and 2 the manufacturer's and 3 reserved.
    """
    letter, digit = code[0], code[1]
    if letter == "P":
        if digit in "02" or (digit == "3" and code[2] in "456789ABCDEF"):
            return "generic"
        return "manufacturer-specific"
    return {"0": "generic", "1": "manufacturer-specific", "2": "manufacturer-specific"}.get(
        digit, "reserved"
    )


def meaning(code: str) -> Meaning:
    """Return the meaning of ``code``; a code without a generic description is named for its
    range (the maker's service information has manufacturer-specific ones)."""
    code = code.upper()
    where = code_range(code)
    text = str(obd.codes.DTC.get(code, ""))
    if not text:
        text = {
            "generic": "generic code without a description in the SAE J2012 table",
            "manufacturer-specific": "manufacturer-specific code: see the maker's service "
            "information",
            "reserved": "reserved range: not assigned by SAE J2012",
        }[where]
    return Meaning(code, _SYSTEMS.get(code[0], "unknown"), where, text)
