"""``fleetlink edge selftest``: the installer's checklist, each line pass, fail (with a hint)
or skip: adapter, vehicle, CAN traffic, GPS fix, clock, broker round trip, outbox disk space.

The result is an :class:`InstallReport` signed with the device's key, which the device
uploads to the cloud, where it is shown on the vehicle's record.
"""

from __future__ import annotations

import email.utils
import importlib
import secrets
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetlink.edge.config import DeviceConfig
from fleetlink.edge.link.errors import LinkError
from fleetlink.edge.provision.detect import AdapterProbe, probe_adapter
from fleetlink.edge.sources.gps_source import wait_for_fix
from fleetlink.shared.codec import CodecError, decode, encode
from fleetlink.shared.enrollment import Check, InstallReport
from fleetlink.shared.messages import Ack, Hello
from fleetlink.shared.signing import sign, verify
from fleetlink.shared.topics import Kind, topic
from fleetlink.shared.version import VERSION

MIN_FREE_BYTES = 200 * 1024 * 1024
MAX_CLOCK_SKEW_S = 2.0
_BROKER_WAIT_S = 10.0
_GPS_WAIT_S = 10.0
_CAN_WAIT_S = 3.0


@dataclass(frozen=True, slots=True)
class CanChannel:
    interface: str
    channel: str


def _check(name: str, ok: bool, detail: str, hint: str) -> Check:
    return Check(
        name=name, outcome="pass" if ok else "fail", detail=detail, hint="" if ok else hint
    )


def check_adapter(config: DeviceConfig) -> tuple[list[Check], AdapterProbe | None]:
    """Return the adapter and vehicle checks, and what the probe found."""
    if config.obd is None:
        skip = [
            Check(name=n, outcome="skip", detail="no [obd] section") for n in ("adapter", "vehicle")
        ]
        return skip, None
    port = config.obd.port
    try:
        probe = probe_adapter(port, config.obd.baudrate)
    except LinkError as exc:
        return [
            _check(
                "adapter",
                False,
                str(exc)[:256],
                f"nothing answers on {port}: check the adapter is plugged in and the port "
                "(fleetlink edge provision lists the serial ports)",
            ),
            Check(name="vehicle", outcome="skip", detail="no adapter"),
        ], None
    return [
        _check("adapter", True, f"{probe.identity} on {port} at {probe.baudrate} baud", ""),
        _check(
            "vehicle",
            probe.vehicle,
            probe.protocol or "the adapter answers, the vehicle does not",
            "turn the ignition on (engine running is best) and check the adapter sits fully in "
            "the OBD-II port",
        ),
    ], probe


def check_can(channel: CanChannel | None) -> Check:
    """Return whether any frame arrives on the CAN channel within a few seconds."""
    if channel is None:
        return Check(name="can", outcome="skip", detail="no CAN interface configured")
    try:
        can = importlib.import_module("can")
    except ImportError:
        return _check("can", False, "python-can is not installed", "pip install python-can")
    try:
        with can.Bus(interface=channel.interface, channel=channel.channel) as bus:
            frame = bus.recv(timeout=_CAN_WAIT_S)
    except (OSError, can.CanError, ValueError) as exc:
        return _check(
            "can",
            False,
            f"{channel.interface} {channel.channel}: {exc}"[:256],
            "check the interface is up (ip link set can0 up type can bitrate 500000)",
        )
    return _check(
        "can",
        frame is not None,
        f"frame 0x{frame.arbitration_id:X} on {channel.channel}"
        if frame is not None
        else f"no frame on {channel.channel} within {_CAN_WAIT_S:.0f} s",
        "check the CAN wiring and bit rate, and that the ignition is on",
    )


def check_gps(config: DeviceConfig) -> Check:
    if config.gps is None:
        return Check(name="gps", outcome="skip", detail="no [gps] section")
    where = config.gps.nmea_port or f"gpsd {config.gps.gpsd}"
    try:
        fix = wait_for_fix(config.gps, _GPS_WAIT_S)
    except (OSError, ValueError) as exc:
        return _check("gps", False, f"{where}: {exc}"[:256], "check the receiver's port or gpsd")
    return _check(
        "gps",
        fix is not None,
        f"fix {fix.latitude:.5f}, {fix.longitude:.5f}" if fix else f"no fix from {where}",
        "give the antenna a clear view of the sky; a cold start can take minutes",
    )


def _cloud_time(api_url: str) -> float | None:
    try:
        with urllib.request.urlopen(f"{api_url}/healthz", timeout=5) as response:
            date = response.headers.get("Date")
    except OSError:
        return None
    parsed = email.utils.parsedate_to_datetime(date) if date else None
    return parsed.timestamp() if parsed else None


def check_clock(config: DeviceConfig) -> Check:
    """Pass if NTP says the clock is synchronised, else if it is within 2 s of the cloud's."""
    if shutil.which("timedatectl"):
        done = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.stdout.strip() == "yes":
            return _check("clock", True, "NTP synchronised", "")
    if config.cloud is None:
        return Check(name="clock", outcome="skip", detail="no NTP status and no [cloud] section")
    before = time.time()
    cloud = _cloud_time(config.cloud.api_url)
    if cloud is None:
        return _check("clock", False, "the cloud's time is unknown", "check the network")
    skew = before - cloud  # the Date header has whole seconds
    return _check(
        "clock",
        abs(skew) <= MAX_CLOCK_SKEW_S + 1,
        f"{skew:+.1f} s from the cloud's clock",
        "enable NTP (timedatectl set-ntp true); samples with a wrong time are quarantined",
    )


def broker_round_trip(config: DeviceConfig, wait_s: float = _BROKER_WAIT_S) -> Check:
    """Connect with the device's own login, send a hello, and wait for the cloud's signed
    answer: proves the credentials, the ACL, the cloud's ingest and the device key."""
    settings, device = config.mqtt, config.device
    answered = threading.Event()
    refused: list[str] = []
    nonce = secrets.token_hex(16)
    key = device.key_bytes()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"fl-selftest-{device.id}-{nonce[:6]}",
        reconnect_on_failure=False,
    )
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.use_tls:
        client.tls_set()

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
            answered.set()
            return
        c.subscribe(topic(device.tenant, device.id, Kind.ACK), qos=1)
        hello = Hello(device_id=device.id, nonce=nonce, next_seq=1)
        c.publish(topic(device.tenant, device.id, Kind.HELLO), encode(hello), qos=1)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            ack = decode(bytes(message.payload), Ack)
        except CodecError:
            return
        if ack.nonce == nonce and (key is None or verify(key, ack)):
            answered.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(settings.host, settings.port, keepalive=30)
    except OSError as exc:
        return _check(
            "broker", False, f"{settings.url}: {exc}"[:256], "check the broker URL and network"
        )
    client.loop_start()
    try:
        answered.wait(wait_s)
    finally:
        client.disconnect()
        client.loop_stop()
    if refused:
        return _check(
            "broker",
            False,
            f"the broker refused {settings.username!r}: {refused[0]}",
            "the broker does not know this device's login yet: the cloud writes it on "
            "enrollment (FLEETLINK_BROKER_PASSWD_FILE); ask the operator to run "
            "fleetlink cloud broker sync",
        )
    return _check(
        "broker",
        answered.is_set(),
        "connected; the cloud answered the hello with a signed ack"
        if answered.is_set()
        else f"connected, but no signed answer within {wait_s:.0f} s",
        "is the cloud's ingest running, and does the device key match the cloud's?",
    )


def check_disk(config: DeviceConfig) -> Check:
    folder = config.outbox.path.parent
    try:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    except OSError as exc:
        return _check("disk", False, f"{folder}: {exc.strerror}", "create the outbox folder")
    return _check(
        "disk",
        free >= MIN_FREE_BYTES,
        f"{free / 2**20:,.0f} MiB free for the outbox in {folder}",
        f"free at least {MIN_FREE_BYTES / 2**20:.0f} MiB, or move outbox.path",
    )


def run_selftest(
    config: DeviceConfig,
    can_channel: CanChannel | None = None,
    progress: Callable[[Check], None] = lambda _check: None,
) -> InstallReport:
    """Run every check (calling ``progress`` after each) and return the signed report.

    The report is unsigned (empty ``mac``) when the configuration has no device key.
    """
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        progress(check)

    adapter_checks, probe = check_adapter(config)
    for check in adapter_checks:
        add(check)
    for run in (
        lambda: check_can(can_channel),
        lambda: check_gps(config),
        lambda: check_clock(config),
        lambda: broker_round_trip(config),
        lambda: check_disk(config),
    ):
        add(run())
    report = InstallReport(
        device_id=config.device.id,
        time_ms=int(time.time() * 1000),
        agent_version=VERSION,
        vin=probe.vin if probe else None,
        profile=config.obd.profile if config.obd else None,
        checks=checks,
    )
    key = config.device.key_bytes()
    return sign(key, report) if key is not None else report
