"""Event types the cloud reads for more than display (``Event.type`` on the wire).

A DTC event's ``data`` carries ``code`` (``"P0301"``) and may carry ``description``; an anomaly
event's ``data`` may carry ``signal`` and ``score``.
"""

from __future__ import annotations

DTC_SET = "dtc_set"
DTC_CLEARED = "dtc_cleared"
ANOMALY = "anomaly"
