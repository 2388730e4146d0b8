"""The tables diag prints for people (rich); ``--json`` prints the same data instead."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def console(stderr: bool = False) -> Console:
    """Return a console on stdout (or stderr) that adds colour only on a terminal."""
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _value(value: Any, unit: str | None = "") -> str:
    if value is None:
        return "-"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".rstrip() if unit else text


def scan_table(data: dict[str, Any]) -> Table:
    table = Table(title="Vehicle scan", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    battery = data["battery"]
    vehicle = data["vehicle"] or {}
    described = " ".join(
        str(v) for v in (vehicle.get("model_year"), vehicle.get("make"), vehicle.get("model")) if v
    )
    rows = [
        ("port", f"{data['port']} ({data['device']}) at {data['baudrate']} baud"),
        ("adapter", data["adapter"]["version"]),
        ("protocol", f"{data['protocol']['name']} ({data['protocol']['id']})"),
        ("battery", _value(battery["value"], "V") if battery else "-"),
        ("ECUs", ", ".join(f"{e['id']} {e['name']}" for e in data["ecus"]) or "-"),
        ("VIN", data["vin"] or "-"),
        ("vehicle", described or "-"),
        ("supported PIDs", f"{len(data['supported_pids'])} in mode 01"),
    ]
    if data["adapter"]["refused_settings"]:
        rows.append(
            ("adapter quirks", "answers ? to " + ", ".join(data["adapter"]["refused_settings"]))
        )
    for row in rows:
        table.add_row(*row)
    return table


def tried_table(tried: list[dict[str, Any]]) -> Table:
    table = Table(title="Ports tried", title_justify="left")
    for column in ("port", "baud rates", "result"):
        table.add_column(column)
    for attempt in tried:
        rates = ", ".join(str(r) for r in attempt["baudrates"])
        table.add_row(attempt["port"], rates, attempt["result"])
    return table


def codes_table(data: dict[str, Any]) -> Table:
    mil = data["mil_on"]
    lamp = "-" if mil is None else "ON" if mil else "off"
    table = Table(
        title=f"Trouble codes (MIL {lamp}, {data['stored_count_reported']} stored reported)",
        title_justify="left",
    )
    for column in ("code", "status", "range", "description"):
        table.add_column(column)
    for c in data["codes"]:
        table.add_row(c["code"], c["status"], c["range"], c["description"])
    if not data["codes"]:
        table.add_row("-", "none", "", "no trouble codes")
    return table


def freeze_frame_table(data: dict[str, Any]) -> Table:
    dtc = data["dtc"]
    title = f"Freeze frame of {dtc['code']} ({dtc['description']})" if dtc else "No freeze frame"
    table = Table(title=title, title_justify="left")
    for column in ("PID", "name", "value"):
        table.add_column(column)
    for v in data["values"]:
        table.add_row(v["pid"], v["description"], _value(v["value"], v["unit"]))
    return table


def monitors_table(data: dict[str, Any]) -> Table:
    mil = "ON" if data["mil_on"] else "off"
    table = Table(
        title=f"Readiness monitors ({data['ignition']} ignition, MIL {mil}, "
        f"{data['dtc_count']} stored codes)",
        title_justify="left",
    )
    table.add_column("monitor")
    table.add_column("since clear")
    table.add_column("this drive cycle")
    cycle = {m["name"]: m["status"] for m in data["this_cycle"] or []}
    for m in data["since_clear"]:
        table.add_row(m["name"], m["status"], cycle.get(m["name"], "-"))
    return table


def pids_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Supported PIDs (mode 01): {len(rows)}", title_justify="left")
    for column in ("PID", "name", "description", "unit", "signal"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["pid"], r["name"], r["description"], r["unit"] or "-", r["signal"] or "-")
    return table


def live_table(readings: list[dict[str, Any]], rate_hz: float | None, passes: int) -> Table:
    rate = f"{rate_hz:.1f} tables/s" if rate_hz else "-"
    table = Table(title=f"Live values (pass {passes}, {rate})", title_justify="left")
    for column in ("command", "signal", "value", "unit"):
        table.add_column(column)
    for r in readings:
        table.add_row(r["command"], r["name"] or "-", _value(r["value"]), r["unit"])
    return table
