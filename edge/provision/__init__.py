"""``fleetlink edge provision``: find the adapter, read and decode the VIN, pick a firmware
profile, enroll with the cloud, write the configuration, install the service, self-test."""

from __future__ import annotations


class ProvisionError(RuntimeError):
    """A step that cannot go on; the message says what failed and what to do."""
