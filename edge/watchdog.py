"""Telling systemd the agent is up and alive (``Type=notify``, ``WatchdogSec=``).

``READY=1`` when the agent's main loop first turns, ``WATCHDOG=1`` from that loop at most
every half watchdog interval, ``STOPPING=1`` on the way out. Outside systemd (no
``NOTIFY_SOCKET``) it does nothing.
"""

from __future__ import annotations

import logging
import os
import time

import sdnotify

log = logging.getLogger(__name__)


class Watchdog:
    """The agent's link to systemd's service manager; every call is cheap and never raises."""

    def __init__(self) -> None:
        self._enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier()
        if self._notifier.socket is not None:
            # A datagram socket blocks when the manager lags behind; a lost pet is better than
            # a frozen event loop (sdnotify drops what cannot be sent).
            self._notifier.socket.setblocking(False)
        usec = os.environ.get("WATCHDOG_USEC", "")
        # Pet twice per interval, as sd_watchdog_enabled(3) advises.
        self.interval_s = int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 else None
        self._last_pet = 0.0
        self._ready_said = False

    @property
    def enabled(self) -> bool:
        """Return True when run by systemd with a notify socket."""
        return self._enabled

    def _send(self, state: str) -> None:
        if self._enabled:
            self._notifier.notify(state)

    def ready(self) -> None:
        """Say the agent started (systemd then counts it as up)."""
        self._send("READY=1")
        if self._enabled:
            log.info(
                "told systemd the agent is ready%s",
                f"; watchdog every {self.interval_s:.1f} s" if self.interval_s else "",
            )

    def pet(self) -> None:
        """Say the main loop still turns: READY=1 the first time (the agent's loop runs), then
        WATCHDOG=1 at most once per half watchdog interval."""
        if not self._ready_said:
            self._ready_said = True
            self.ready()
        if self.interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_pet >= self.interval_s:
            self._last_pet = now
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """Say the agent is stopping (so a slow drain is not taken for a hang)."""
        self._send("STOPPING=1")
