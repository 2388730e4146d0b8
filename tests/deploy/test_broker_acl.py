"""The shipped mosquitto config with the password file and ACL the cloud generates, on a real
mosquitto: the ingest reads every device; each device publishes only on its own topics and reads
only its own acks and commands (issue 16, probe 7)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleetlink.cloud.broker_identity import DeviceLogin, hash_password, write_files
from tests.conftest import _port_open, free_port
from tests.waiting import wait_until

DEPLOY = Path(__file__).parents[2] / "deploy" / "cloud"
PASSWORDS = {"ingest": "Ingest-Pw-7731", "devA": "Device-A-Pw-42", "devB": "Device-B-Pw-43"}


@pytest.fixture(scope="module")
def broker() -> Iterator[int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd_exe = shutil.which("mosquitto_passwd")
    if not Path(exe).exists() or passwd_exe is None:
        pytest.fail("mosquitto and mosquitto_passwd must be installed")
    with tempfile.TemporaryDirectory(prefix="fl-acl-") as name:
        yield from _run_broker(exe, passwd_exe, Path(name))


def _run_broker(exe: str, passwd_exe: str, tmp: Path) -> Iterator[int]:
    # Started as root, mosquitto drops to its own user, which must read these files.
    tmp.chmod(0o777)
    service = tmp / "passwd.service"
    subprocess.run(
        [passwd_exe, "-c", "-b", str(service), "ingest", PASSWORDS["ingest"]], check=True
    )
    logins = [
        DeviceLogin("acme", user, hash_password(password))
        for user, password in PASSWORDS.items()
        if user != "ingest"
    ]
    write_files(logins, tmp / "passwd", tmp / "acl", "ingest", service)
    port = free_port()
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/generated/", f"{tmp}/").replace("/mosquitto/data/", f"{tmp}/")
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.MULTILINE)
    (tmp / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(
        [exe, "-c", str(tmp / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "log").open("wb"),
    )
    try:
        wait_until(lambda: _port_open("127.0.0.1", port) or proc.poll() is not None, 10)
        assert proc.poll() is None, (tmp / "log").read_text()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class Client:
    """A v5 client that records what it receives and the broker's answers."""

    def __init__(self, port: int, user: str | None, password: str | None = None) -> None:
        self.user = user
        self.received: list[str] = []
        self.senders: set[tuple[str, bytes]] = set()
        self.granted: list[int] = []
        self.refused_connect: int | None = None
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"acl-{user}-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        if user:
            self.client.username_pw_set(user, password if password is not None else PASSWORDS[user])
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(lambda: self.connected.is_set() or self.refused_connect is not None, 5)

    def _on_connect(self, _c, _u, _f, reason, _p) -> None:  # type: ignore[no-untyped-def]
        if reason.is_failure:
            self.refused_connect = reason.value
        else:
            self.connected.set()

    def _on_message(self, _c, _u, message) -> None:  # type: ignore[no-untyped-def]
        self.received.append(message.topic)
        self.senders.add((message.topic, bytes(message.payload)))

    def _on_subscribe(self, _c, _u, _mid, reasons, _p) -> None:  # type: ignore[no-untyped-def]
        self.granted = [r.value for r in reasons]
        self.subscribed.set()

    def subscribe(self, *filters: str) -> list[int]:
        self.subscribed.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self.subscribed.wait(5)
        return self.granted

    def publish(self, topic: str) -> None:
        self.client.publish(topic, str(self.user).encode(), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def t(device: str, kind: str) -> str:
    return f"fl/v1/acme/{device}/{kind}"


def test_anonymous_and_wrong_passwords_are_refused(broker: int) -> None:
    for client in (Client(broker, None), Client(broker, "devA", "wrong-password")):
        assert client.refused_connect is not None
        client.close()


def test_ingest_reads_every_device_and_each_device_only_its_own_topics(broker: int) -> None:
    ingest, dev_a, dev_b = Client(broker, "ingest"), Client(broker, "devA"), Client(broker, "devB")
    try:
        assert ingest.connected.is_set() and dev_a.connected.is_set()
        kinds = ("telemetry", "events", "status", "hello")
        granted = ingest.subscribe(*(f"$share/ingest/fl/v1/+/+/{k}" for k in kinds))
        assert all(code < 0x80 for code in granted), granted
        # Each device may subscribe to its own acks and commands. mosquitto 2.0 may grant a
        # subscription to another device's topics, but never delivers what the ACL does not
        # let the device read: devA listens on devB's topics and on a wildcard below.
        assert all(c < 0x80 for c in dev_a.subscribe(t("devA", "ack"), t("devA", "cmd")))
        dev_a.subscribe(t("devB", "ack"), t("devB", "cmd"), "fl/v1/+/+/ack", "fl/v1/#")
        assert all(c < 0x80 for c in dev_b.subscribe(t("devB", "ack")))

        for kind in kinds:
            dev_a.publish(t("devA", kind))
            dev_a.publish(t("devB", kind))  # as another device: dropped by the broker
        wait_until(lambda: len(ingest.received) >= len(kinds), 5)
        time.sleep(0.5)  # anything wrongly let through would have arrived by now
        assert sorted(ingest.received) == sorted(t("devA", k) for k in kinds)
        assert {sender for _, sender in ingest.senders} == {b"devA"}

        assert dev_a.received == []  # not even devA's own uplink, nor devB's attempts

        # Devices may not publish acks or commands, not even to themselves; the ingest may.
        dev_a.publish(t("devB", "ack"))
        dev_a.publish(t("devA", "ack"))
        dev_b.publish(t("devA", "cmd"))
        ingest.publish(t("devA", "ack"))
        ingest.publish(t("devB", "ack"))
        ingest.publish(t("devB", "cmd"))
        wait_until(lambda: dev_a.received and dev_b.received, 5)
        time.sleep(0.5)
        assert dev_a.senders == {(t("devA", "ack"), b"ingest")}
        assert dev_b.senders == {(t("devB", "ack"), b"ingest")}
    finally:
        for client in (ingest, dev_a, dev_b):
            client.close()


def test_compose_mounts_what_mosquitto_reads_and_publishes_only_its_listeners() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mosquitto = compose["services"]["mosquitto"]
    cloud = compose["services"]["api"]
    # The API (which enrolls devices) writes the files mosquitto reads, into the volume both
    # mount.
    shared = {v.split(":")[0] for v in cloud["volumes"]} & {
        v.split(":")[0] for v in mosquitto["volumes"]
    }
    assert shared == {"brokerfiles"}
    mounted = {v.split(":")[1] for v in mosquitto["volumes"]}
    conf = (DEPLOY / "mosquitto.conf").read_text()
    needed = re.findall(r"^(?:password_file|acl_file|certfile|keyfile) (\S+)$", conf, re.M)
    assert needed and all(any(path.startswith(m) for m in mounted) for path in needed)
    for volume in mosquitto["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./") and source != "./passwd.service":  # the operator's
            assert (DEPLOY / source).exists(), source
    listeners = set(re.findall(r"^listener (\d+)", conf, re.M))
    published = {p.split(":")[-1] for p in mosquitto["ports"]}
    assert published <= listeners
