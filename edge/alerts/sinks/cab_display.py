"""The cab display: a page the agent serves itself (stdlib ``http.server``, no internet, no
web framework), for a tablet or screen in the cab.

- ``GET /``: the alerts not yet acknowledged, in large high-contrast text, each with an
  Acknowledge button (a plain form: the page works without JavaScript, and reloads itself
  every five seconds then; with JavaScript it follows ``/events``).
- ``GET /alerts.json``: the same list as JSON.
- ``GET /events``: Server-Sent Events; the list again (``event: alerts``) on every change.
- ``POST /ack`` with ``id=<alert id>``: the driver's acknowledgement.

It listens on 127.0.0.1 unless the device config names another address.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import uuid
from collections import OrderedDict
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from fleetlink.edge.alerts.alert import Alert
from fleetlink.edge.alerts.sinks.base import Acknowledge, AlertSink

log = logging.getLogger(__name__)

_SHOWN = 10
_KEEPALIVE_S = 15.0
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fleetlink cab display</title>
<noscript><meta http-equiv="refresh" content="5"></noscript>
<style>
body {{ background: #000; color: #fff; font: 2.2rem/1.3 system-ui, sans-serif; margin: 1rem; }}
.alert {{ border: 6px solid #ffd600; padding: 1rem; margin-bottom: 1rem; }}
.critical {{ border-color: #ff1744; background: #3a0000; }}
.info {{ border-color: #00e5ff; }}
.msg {{ font-size: 3rem; font-weight: 700; }}
.meta {{ color: #ddd; font-size: 1.6rem; }}
button {{ font-size: 2.4rem; padding: .6rem 2rem; background: #ffd600; color: #000;
  border: 0; font-weight: 700; }}
#none {{ color: #9f9; font-size: 3rem; }}
</style></head>
<body><main id="alerts">{body}</main>
<script>
const main = document.getElementById("alerts");
function esc(s) {{
  const d = document.createElement("div"); d.textContent = s; return d.innerHTML;
}}
function render(list) {{
  if (!list.length) {{ main.innerHTML = '<p id="none">No alerts. Drive safely.</p>'; return; }}
  main.innerHTML = list.map(a => `<section class="alert ${{a.severity}}">
    <div class="msg">${{esc(a.message)}}</div>
    <div class="meta">${{esc(a.time)}}
    ${{a.escalated ? " · reported to your fleet manager" : ""}}</div>
    <form method="post" action="/ack"><input type="hidden" name="id" value="${{a.id}}">
    <button>Acknowledge</button></form></section>`).join("");
}}
main.addEventListener("submit", e => {{
  e.preventDefault();
  fetch("/ack", {{method: "POST", body: new URLSearchParams(new FormData(e.target))}});
}});
new EventSource("/events").addEventListener("alerts", e => render(JSON.parse(e.data)));
</script></body></html>
"""


def _card(alert: dict[str, Any]) -> str:
    note = " · reported to your fleet manager" if alert["escalated"] else ""
    return (
        f'<section class="alert {alert["severity"]}">'
        f'<div class="msg">{html.escape(alert["message"])}</div>'
        f'<div class="meta">{html.escape(alert["time"])}{note}</div>'
        f'<form method="post" action="/ack"><input type="hidden" name="id" '
        f'value="{alert["id"]}"><button>Acknowledge</button></form></section>'
    )


class _Board:
    """The alerts on show, and a version that grows with every change (for /events)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.version = 0
        self.closing = False
        self._alerts: OrderedDict[uuid.UUID, dict[str, Any]] = OrderedDict()

    def put(self, alert: Alert) -> None:
        with self.changed:
            self._alerts[alert.id] = {
                "id": str(alert.id),
                "rule": alert.rule,
                "message": alert.message,
                "severity": alert.severity,
                "escalated": alert.escalated,
                "time_ms": alert.time_ms,
                "time": datetime.fromtimestamp(alert.time_ms / 1000).strftime("%H:%M:%S"),
            }
            while len(self._alerts) > _SHOWN:
                self._alerts.popitem(last=False)
            self.version += 1
            self.changed.notify_all()

    def remove(self, alert_id: uuid.UUID) -> None:
        with self.changed:
            if self._alerts.pop(alert_id, None) is not None:
                self.version += 1
                self.changed.notify_all()

    def snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """Return the version and the alerts on show, newest first."""
        with self.changed:
            return self.version, list(reversed(self._alerts.values()))

    def close(self) -> None:
        with self.changed:
            self.closing = True
            self.changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: _DisplayServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("cab display: " + format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        board = self.server.board
        if self.path == "/":
            alerts = board.snapshot()[1]
            body = "".join(_card(a) for a in alerts) or '<p id="none">No alerts. Drive safely.</p>'
            self._send(HTTPStatus.OK, _PAGE.format(body=body).encode(), "text/html; charset=utf-8")
        elif self.path == "/alerts.json":
            alerts = board.snapshot()[1]
            self._send(HTTPStatus.OK, json.dumps({"alerts": alerts}).encode(), "application/json")
        elif self.path == "/events":
            self._stream(board)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _stream(self, board: _Board) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        try:
            while True:
                last = seen
                with board.changed:
                    board.changed.wait_for(
                        lambda: board.version != last or board.closing,  # noqa: B023
                        _KEEPALIVE_S,
                    )
                    if board.closing:
                        return
                version, alerts = board.snapshot()
                if version == seen:
                    self.wfile.write(b": keepalive\n\n")
                else:
                    seen = version
                    self.wfile.write(f"event: alerts\ndata: {json.dumps(alerts)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    def do_POST(self) -> None:
        if self.path != "/ack":
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        length = min(int(self.headers.get("Content-Length") or 0), 4096)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        try:
            alert_id = uuid.UUID(form.get("id", [""])[0])
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, b"id: not an alert id\n", "text/plain")
            return
        self.server.acknowledge(alert_id, "display")
        self.server.board.remove(alert_id)
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _DisplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], board: _Board, acknowledge: Acknowledge):
        super().__init__(address, _Handler)
        self.board = board
        self.acknowledge = acknowledge


class CabDisplaySink(AlertSink):
    """Serves the cab display page on ``address``:``port`` (port 0: any free port; the one
    taken is in :attr:`port` after :meth:`start`)."""

    name = "cab_display"

    def __init__(self, address: str = "127.0.0.1", port: int = 8421) -> None:
        self.address = address
        self.port = port
        self.board = _Board()
        self._server: _DisplayServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, acknowledge: Acknowledge) -> None:
        """Start serving; raises OSError when the address cannot be bound."""
        self._server = _DisplayServer((self.address, self.port), self.board, acknowledge)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cab-display", daemon=True
        )
        self._thread.start()
        log.info("cab display at http://%s:%d/", self.address, self.port)

    def show(self, alert: Alert) -> None:
        self.board.put(alert)

    def acknowledged(self, alert_id: uuid.UUID) -> None:
        self.board.remove(alert_id)

    def close(self) -> None:
        self.board.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
