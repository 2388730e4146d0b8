"""The one interface every alert sink implements (python-can's ``BusABC`` shape).

A sink tells the driver: it prints, speaks, lights or shows an :class:`Alert`. The engine
calls it from the agent's loop, so :meth:`AlertSink.show` must return quickly (a sink that
blocks hands the work to a thread or a child process). A sink that can take the driver's
acknowledgement calls the ``acknowledge`` callback it was started with.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable

from fleetlink.edge.alerts.alert import Alert

# Called with the alert's id and where the driver acknowledged it ("display", "terminal").
Acknowledge = Callable[[uuid.UUID, str], None]


class AlertSink(ABC):
    """Somewhere the driver is told of alerts."""

    name = "sink"

    def start(self, acknowledge: Acknowledge) -> None:  # noqa: B027 - optional hook
        """Get ready (open a port, start a thread); return at once."""

    @abstractmethod
    def show(self, alert: Alert) -> None:
        """Tell the driver of ``alert``; return at once."""

    def acknowledged(self, alert_id: uuid.UUID) -> None:  # noqa: B027 - optional hook
        """The driver acknowledged ``alert_id`` (here or elsewhere); stop showing it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` took."""
