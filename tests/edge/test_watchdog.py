"""The agent's systemd notifications go over a real NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from fleetlink.edge.config import parse_config
from fleetlink.edge.device_runner import run_device_async
from fleetlink.edge.watchdog import Watchdog
from tests.conftest import free_port
from tests.waiting import eventually


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    messages = []
    sock.settimeout(0.2)
    while True:
        try:
            messages.append(sock.recv(256).decode())
        except TimeoutError:
            return messages


def test_the_first_pet_says_ready_then_pets_come_at_half_the_interval(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    watchdog = Watchdog()
    assert watchdog.enabled and watchdog.interval_s == 15.0
    for _ in range(50):  # the main loop turns often; systemd hears once per half interval
        watchdog.pet()
    watchdog.stopping()
    assert _received(notify_socket) == ["READY=1", "WATCHDOG=1", "STOPPING=1"]


def test_without_a_watchdog_interval_nothing_is_petted(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    watchdog = Watchdog()
    watchdog.pet()
    watchdog.pet()
    assert _received(notify_socket) == ["READY=1"]


def test_outside_systemd_it_sends_nothing_and_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000")
    watchdog = Watchdog()
    assert not watchdog.enabled
    watchdog.ready()
    watchdog.pet()
    watchdog.stopping()


async def test_the_running_agent_says_ready_pets_from_its_loop_and_says_stopping(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pet every 0.1 s
    config = parse_config(
        {
            "device": {"id": "dev-wd", "tenant": "acme"},
            "mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}", "reconnect_max_s": 1},
            "obd": {"port": str(tmp_path / "no-adapter")},
            "outbox": {"path": str(tmp_path / "outbox.db")},
        }
    )
    messages: list[str] = []

    def read() -> None:  # as systemd does: all along
        notify_socket.settimeout(0.5)
        while not stop.is_set() or not messages or messages[-1] != "STOPPING=1":
            with contextlib.suppress(TimeoutError):
                messages.append(notify_socket.recv(256).decode())

    stop = asyncio.Event()
    reader = asyncio.create_task(asyncio.to_thread(read))
    runner = asyncio.create_task(run_device_async(config, stop, Watchdog()))
    await eventually(lambda: messages.count("WATCHDOG=1") >= 3, 20, "three pets")
    stop.set()
    await asyncio.wait_for(runner, 15)
    await asyncio.wait_for(reader, 5)
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 3
