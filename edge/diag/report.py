"""A diagnostic session's report: saved as JSON and HTML, and attached to the vehicle's record
in the cloud (``POST /api/v1/diagnostic-reports``) when an API token is configured.

The token comes from ``--token``, ``FLEETLINK_API_TOKEN`` or the ``api_token`` key of the
diag config file (``~/.config/fleetlink/diag.toml``, or ``--config``); it is sent only in the
``Authorization`` header and never printed.
"""

from __future__ import annotations

import html
import json
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetlink.edge.diag.errors import DiagError, ExitCode

FORMAT = "fleetlink-diagnostic-report/1"
DEFAULT_CONFIG = Path("~/.config/fleetlink/diag.toml")
_UPLOAD_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class CloudTarget:
    api_url: str
    token: str


def build(
    scan: dict[str, Any],
    codes: dict[str, Any],
    freeze_frame: dict[str, Any] | None,
    monitors: dict[str, Any] | None,
    live: list[dict[str, Any]],
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Return the report document (the shape documented in docs/guides/technician.md)."""
    return {
        "format": FORMAT,
        "created_at": (created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "vin": scan["vin"],
        "vehicle": scan["vehicle"],
        "adapter": {
            "port": scan["port"],
            "version": scan["adapter"]["version"],
            "baudrate": scan["baudrate"],
            "protocol": scan["protocol"],
            "battery": scan["battery"],
        },
        "ecus": scan["ecus"],
        "mil_on": codes["mil_on"],
        "codes": codes["codes"],
        "freeze_frame": freeze_frame,
        "monitors": monitors,
        "live": live,
    }


def _rows(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: dict[str, Any]) -> str:
    """Return the report as one self-contained HTML page (no scripts, no external files)."""
    vehicle = report["vehicle"] or {}
    adapter = report["adapter"]
    title = f"Diagnostic report {report['vin'] or 'unknown VIN'}"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        _rows(
            ["what", "value"],
            [
                ["time", report["created_at"]],
                ["VIN", report["vin"] or "-"],
                ["make", vehicle.get("make") or "-"],
                ["model", vehicle.get("model") or "-"],
                ["model year", vehicle.get("model_year") or "-"],
                ["adapter", f"{adapter['version']} on {adapter['port']}"],
                ["protocol", adapter["protocol"]["name"]],
                ["battery", f"{adapter['battery']['value']} V" if adapter["battery"] else "-"],
                ["MIL", "on" if report["mil_on"] else "off"],
            ],
        ),
        "<h2>Trouble codes</h2>",
        _rows(
            ["code", "status", "range", "description"],
            [[c["code"], c["status"], c["range"], c["description"]] for c in report["codes"]],
        ),
    ]
    frame = report["freeze_frame"]
    if frame and frame["dtc"]:
        sections += [
            f"<h2>Freeze frame of {html.escape(frame['dtc']['code'])}</h2>",
            _rows(
                ["PID", "name", "value", "unit"],
                [[v["pid"], v["description"], v["value"], v["unit"]] for v in frame["values"]],
            ),
        ]
    if report["monitors"]:
        cycle = {m["name"]: m["status"] for m in report["monitors"]["this_cycle"] or []}
        sections += [
            "<h2>Readiness monitors</h2>",
            _rows(
                ["monitor", "since clear", "this drive cycle"],
                [
                    [m["name"], m["status"], cycle.get(m["name"], "-")]
                    for m in report["monitors"]["since_clear"]
                ],
            ),
        ]
    sections += [
        "<h2>Live values</h2>",
        _rows(
            ["command", "signal", "value", "unit"],
            [[r["command"], r["name"] or "-", r["value"], r["unit"]] for r in report["live"]],
        ),
    ]
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 6px}"
    )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )


def save(report: dict[str, Any], base: Path) -> tuple[Path, Path]:
    """Write ``base``.json and ``base``.html; return both paths.

    Raises:
        DiagError(BAD_FILE): the files cannot be written.
    """
    json_path, html_path = base.with_suffix(".json"), base.with_suffix(".html")
    try:
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        html_path.write_text(to_html(report), encoding="utf-8")
    except OSError as exc:
        raise DiagError(
            f"cannot write the report to {base}: {exc.strerror or exc}", ExitCode.BAD_FILE
        ) from None
    return json_path, html_path


def cloud_target(api_url: str | None, token: str | None, config: Path | None) -> CloudTarget | None:
    """Return where to upload, from the options (already merged with the environment) and then
    the config file; None when no token is configured.

    Raises:
        DiagError(BAD_FILE): the config file exists but is not TOML.
    """
    path = (config or DEFAULT_CONFIG).expanduser()
    settings: dict[str, Any] = {}
    if path.is_file():
        try:
            settings = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DiagError(
                f"cannot read the diag config {path}: {exc}", ExitCode.BAD_FILE
            ) from None
    elif config is not None:
        raise DiagError(f"the diag config {path} does not exist", ExitCode.BAD_FILE)
    token = token or settings.get("api_token")
    if not token:
        return None
    url = api_url or settings.get("api_url") or "http://127.0.0.1:8080"
    return CloudTarget(str(url).rstrip("/"), str(token))


def upload(report: dict[str, Any], target: CloudTarget) -> dict[str, Any]:
    """Attach the report to its vehicle's record; return the created record (id, vehicle_id).

    Raises:
        DiagError(UPLOAD_FAILED): no VIN, the cloud cannot be reached, or it refused the report
            (its problem detail is in the message).
    """
    if not report["vin"]:
        raise DiagError(
            "the report has no VIN, so it cannot be attached to a vehicle; it is saved locally",
            ExitCode.UPLOAD_FAILED,
        )
    body = json.dumps({"vin": report["vin"], "report": report}).encode()
    request = urllib.request.Request(
        f"{target.api_url}/api/v1/diagnostic-reports",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_UPLOAD_TIMEOUT_S) as response:
            created: dict[str, Any] = json.loads(response.read())
            return created
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except (ValueError, AttributeError):
            detail = ""
        raise DiagError(
            f"the cloud at {target.api_url} refused the report ({exc.code}"
            f"{': ' + detail if detail else ''}); it is saved locally",
            ExitCode.UPLOAD_FAILED,
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DiagError(
            f"cannot reach the cloud at {target.api_url} ({reason}); the report is saved locally",
            ExitCode.UPLOAD_FAILED,
        ) from None
