"""``fleetlink demo`` on its embedded defaults (pgserver, amqtt) serves every vehicle's signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.conftest import Broker, free_port

pytestmark = pytest.mark.integration


def _get(url: str, token: str) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def _token(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("API token  "):
            return line.split()[2]
    return None


def _run_demo_until_every_vehicle_reports(env: dict[str, str]) -> str:
    """Run the demo with two vehicles until the API shows both vehicles' speed; return its
    output after Ctrl-C."""
    port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from fleetlink.__main__ import main; main()",
            "demo",
            "--vehicles",
            "2",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    lines: list[str] = []
    assert demo.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        names: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            time.sleep(1)
            assert demo.poll() is None, "".join(lines)
            token = _token(lines)
            if token is None:
                continue
            try:
                vehicles = _get(f"{api}/vehicles", token)["items"]
                names = {
                    v["id"]: {
                        s["name"]
                        for s in _get(f"{api}/vehicles/{v['id']}/signals/latest", token)["signals"]
                    }
                    for v in vehicles
                }
            except OSError:
                continue
            if len(names) == 2 and all("Vehicle.Speed" in n for n in names.values()):
                break
        assert len(names) == 2 and all("Vehicle.Speed" in n for n in names.values()), (
            names,
            "".join(lines),
        )
        # The portal's map (its JSON twin, read with the token) shows both vehicles moving.
        portal_map = api.replace("/api/v1", "/portal/map.json")
        seen: dict[str, set[tuple[float, float]]] = {}
        map_deadline = time.monotonic() + 60
        while time.monotonic() < map_deadline and not (
            len(seen) == 2 and all(len(p) > 1 for p in seen.values())
        ):
            for p in _get(portal_map, token)["positions"]["items"]:
                seen.setdefault(p["vehicle_id"], set()).add((p["latitude"], p["longitude"]))
            time.sleep(1)
        assert len(seen) == 2 and all(len(p) > 1 for p in seen.values()), seen
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{api}/vehicles", "flt_not_a_token")
        assert refused.value.code == 401
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert demo.returncode == 0, out
    assert "cloud API  http://127.0.0.1:" in out
    assert "portal     http://127.0.0.1:" in out
    assert "samples" in out and "demo stopped" in out
    return out


def test_demo_serves_each_vehicles_latest_signals_and_stops_cleanly_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLINK_")}
    out = _run_demo_until_every_vehicle_reports(env)
    assert "?host=/tmp/fleetlink-demo-" in out  # the embedded PostgreSQL


def test_demo_uses_the_database_and_broker_the_environment_names(
    database_url: str, mqtt_broker: Broker
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLINK_")}
    env |= {"FLEETLINK_DATABASE_URL": database_url, "FLEETLINK_MQTT_URL": mqtt_broker.url}
    # The broker is shared with every other test (and anything else on this machine): a
    # group of this run's own keeps another ingest in the default group from taking, round
    # robin, every other message (with two vehicles publishing in turn, all of one vehicle's).
    env["FLEETLINK_MQTT_SHARE_GROUP"] = f"demo-{uuid.uuid4().hex[:8]}"
    out = _run_demo_until_every_vehicle_reports(env)
    assert f"database   {database_url}" in out
    assert f"broker     {mqtt_broker.url}" in out


def test_demo_on_a_taken_port_says_which_and_what_to_do() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLINK_")}
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from fleetlink.__main__ import main; main()",
                "demo",
                "--vehicles",
                "1",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"cannot serve the API on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
