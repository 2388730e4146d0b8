"""Signed updates on the device: what is refused and why, the atomic switch, the restart into
an update, and the roll-back when it does not start."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleetlink.edge.config import parse_config
from fleetlink.edge.device_runner import run_device_async
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.updates import (
    Updater,
    apply_active,
    read_active,
    running_versions,
    settle_trial,
)
from fleetlink.shared.codec import decode, encode
from fleetlink.shared.messages import EventBatch
from fleetlink.shared.topics import Kind, topic
from fleetlink.shared.updates import UpdateCommand, make_update, new_private_hex, private_key
from tests.conftest import Broker, free_port
from tests.waiting import eventually

KEY = private_key(new_private_hex())
GENERIC = Path(__file__).parents[2] / "firmware_profiles" / "generic-obd2.toml"


def profile_text(version: str, rate_hz: float = 4.0) -> bytes:
    text = GENERIC.read_text().replace('version = "1.0.0"', f'version = "{version}"')
    return text.replace("rate_hz = 2.0", f"rate_hz = {rate_hz}").encode()


def device_config(tmp_path: Path, mqtt_port: int = 1883):  # type: ignore[no-untyped-def]
    public = KEY.public_key().public_bytes_raw().hex()
    return parse_config(
        {
            "device": {"id": "dev-upd", "tenant": "acme"},
            "mqtt": {"url": f"mqtt://127.0.0.1:{mqtt_port}", "reconnect_max_s": 1},
            "obd": {"port": str(tmp_path / "no-adapter")},
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "updates": {"public_key": public, "dir": str(tmp_path / "updates")},
        }
    )


def command(kind: str = "profile", version: str = "1.1.0", content: bytes | None = None,
            device: str = "dev-upd") -> UpdateCommand:  # fmt: skip
    content = profile_text(version) if content is None else content
    return make_update(KEY, device, kind, version, content, int(time.time() * 1000))  # type: ignore[arg-type]


def test_a_signed_profile_is_switched_to_atomically_and_applied_once(tmp_path: Path) -> None:
    config = device_config(tmp_path)
    updater = Updater(config)
    cmd = command()
    handled = updater.handle(encode(cmd))
    assert handled is not None and handled[1:] == ("applied", "")
    active = read_active(config.updates)  # type: ignore[arg-type]
    assert active["profile"]["version"] == "1.1.0"
    assert active["trial"]["command_id"] == str(cmd.command_id)
    effective = apply_active(config)
    assert effective.obd is not None and effective.obd.poll_groups()[0].rate_hz == 4.0
    assert running_versions(config.updates) == {"profile": "1.1.0"}
    assert updater.handle(encode(cmd)) is None  # the retained command seen again


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda c: c.model_copy(update={"content_b64": c.content_b64[:-8]}), "signature"),
        (lambda c: c.model_copy(update={"version": "9.9.9"}), "signature"),
        (lambda c: c.model_copy(update={"signature": ""}), "not signed"),
        (
            lambda c: make_update(
                private_key(new_private_hex()), "dev-upd", "profile", "1", b"x", 1
            ),
            "signature",
        ),
        (lambda c: command(device="dev-other"), "for device 'dev-other'"),
    ],
    ids=["truncated", "altered", "unsigned", "foreign-key", "other-device"],
)
def test_a_tampered_truncated_or_foreign_update_is_refused_with_a_reason(
    tmp_path: Path, tamper, reason: str
) -> None:  # type: ignore[no-untyped-def]
    config = device_config(tmp_path)
    handled = Updater(config).handle(encode(tamper(command())))
    assert handled is not None
    _, outcome, why = handled
    assert outcome == "refused" and reason in why
    assert "profile" not in read_active(config.updates)  # type: ignore[arg-type]


def test_content_that_would_not_start_is_refused_before_the_switch(tmp_path: Path) -> None:
    config = device_config(tmp_path)
    updater = Updater(config)
    broken = profile_text("2.0.0").replace(b'commands = ["RPM"', b'commands = ["NO_SUCH_PID"')
    outcomes = [
        updater.handle(encode(command(content=broken, version="2.0.0"))),
        updater.handle(encode(command("model", "m1", b"\x00" * 64))),
        updater.handle(
            encode(command("config", "c1", b'[obd]\nport = "/dev/ttyUSB0"\ntimeout_s = -1\n'))
        ),
        updater.handle(b"\x00not an update"),
    ]
    assert [o[1] for o in outcomes if o] == ["refused"] * 4
    reasons = [o[2] for o in outcomes if o]
    assert "profile does not load" in reasons[0] and "NO_SUCH_PID" in reasons[0]
    assert "TFLite" in reasons[1]
    assert "obd.timeout_s" in reasons[2]
    assert "malformed" in reasons[3]
    assert set(read_active(config.updates)) <= {"applied"}  # type: ignore[arg-type]


async def test_an_update_pushed_on_the_cmd_topic_restarts_the_agent_into_it(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    config = device_config(tmp_path, mqtt_broker.port)
    stop = asyncio.Event()
    runner = asyncio.create_task(run_device_async(config, stop))
    name = topic("acme", "dev-upd", Kind.CMD)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cmd-{uuid.uuid4().hex[:6]}")
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    try:
        await asyncio.sleep(1.0)  # the agent subscribes
        client.publish(name, encode(command(version="1.1.0")), qos=1).wait_for_publish(5)
        settings = config.updates
        assert settings is not None
        await eventually(
            lambda: (
                running_versions(settings) == {"profile": "1.1.0"}
                and "trial" not in read_active(settings)
            ),
            10,
            "the agent restarted into the update",
        )
    finally:
        client.disconnect()
        client.loop_stop()
        stop.set()
        await runner
    assert ("1.1.0", "applied") in {(r["version"], r["outcome"]) for r in results(config)}


async def test_an_update_that_does_not_start_is_rolled_back_and_reported(tmp_path: Path) -> None:
    config = device_config(tmp_path, free_port())
    settings = config.updates
    assert settings is not None
    updater = Updater(config)
    updater.handle(encode(command(version="1.1.0")))
    settle_trial(settings, started=True)  # running 1.1.0
    updater.handle(encode(command(version="1.2.0")))  # switched to; the restart is next
    Path(read_active(settings)["profile"]["path"]).write_text("format = 1\n")  # breaks
    stop = asyncio.Event()
    runner = asyncio.create_task(run_device_async(config, stop))
    await asyncio.sleep(0.5)
    stop.set()
    await runner
    assert running_versions(settings) == {"profile": "1.1.0"}
    rolled = [r for r in results(config) if r["outcome"] == "rolled_back"]
    assert [r["version"] for r in rolled] == ["1.2.0"]
    assert "1.2.0.toml" in str(rolled[0]["reason"])


def results(config) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    """Return the update_result events waiting in the device's outbox."""
    with Outbox(config.outbox.path) as outbox:
        return [
            event.data
            for batch in outbox.pending()
            if batch.kind == "events"
            for event in decode(batch.payload, EventBatch).events
            if event.type == "update_result"
        ]
