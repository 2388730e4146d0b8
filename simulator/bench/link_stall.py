"""The adapter stalls, then answers everything queued meanwhile: is every stored value right?

Runs the agent's OBD source against an adapter that stops answering for ``stall_s`` seconds
and then replays the replies to every request it received meanwhile (the project's
simulator, or the independent ELM327-emulator paused and resumed), and reports how long the
source took to call the adapter ``stalled``, how many replies it discarded, whether polling
resumed, and how many stored values differ from what the vehicle produced for that signal.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.link.python_obd import Message, obd
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import ObdSource

AdapterKind = Literal["simulator", "elm327-emulator"]
COMMANDS = ("RPM", "SPEED", "COOLANT_TEMP", "MAF")
_DATA = re.compile(r"<header>7E8</header><size>[0-9A-F]+</size><data>([0-9A-F ]+)</data>")


@dataclass
class StallRun:
    """The figures of one stall: times in seconds, counts of replies and samples."""

    adapter: AdapterKind
    stall_s: float
    stall_after_s: float
    detection_s: float | None = None
    recovery_s: float | None = None
    samples: int = 0
    samples_after_recovery: Counter[int] = field(default_factory=Counter)
    wrong_values: int = 0
    counters: Counter[str] = field(default_factory=Counter)
    states: list[tuple[float, str]] = field(default_factory=list)

    @property
    def discarded(self) -> int:
        """Return the replies thrown away: caught by the check, or drained while resyncing."""
        return self.counters["mismatched_replies"] + self.counters["stale_replies_discarded"]

    def line(self) -> str:
        """Return the run as one report line."""
        detection = "never" if self.detection_s is None else f"{self.detection_s:5.2f} s"
        recovery = "never" if self.recovery_s is None else f"{self.recovery_s:5.2f} s"
        return (
            f"{self.adapter:<16} stall {self.stall_s:4.0f} s | stalled after {detection} "
            f"(configured {self.stall_after_s:g} s) | polling again {recovery} after the "
            f"adapter answered | discarded {self.discarded} replies "
            f"({self.counters['mismatched_replies']} mismatched, "
            f"{self.counters['stale_replies_discarded']} drained) | stored {self.samples} "
            f"samples, {self.wrong_values} not what the vehicle produced for their signal"
        )


def decode_payload(payload: bytes) -> list[tuple[int, float]]:
    """Return (PID, value in python-obd's unit) for each PID of a mode 01 payload such as
    ``41 0C 1A F8`` or ``41 0C 1A F8 0D 3C`` (several PIDs in one answer)."""
    decoded: list[tuple[int, float]] = []
    i = 1
    while payload[:1] == b"\x41" and i < len(payload) and obd.commands.has_pid(1, payload[i]):
        pid = payload[i]
        size = obd.commands[1][pid].bytes - 2
        message = Message([])
        message.data = bytearray((0x41, pid)) + payload[i + 1 : i + 1 + size]
        message.ecu = obd.ECU.ALL
        value = obd.commands[1][pid]([message]).value
        magnitude = getattr(value, "magnitude", value)
        if isinstance(magnitude, int | float):
            decoded.append((pid, float(magnitude)))
        i += 1 + size
    return decoded


def count_wrong(stored: dict[int, list[float]], produced: dict[int, list[float]]) -> int:
    """Return how many stored values break "each signal's stored values, in order, are a
    subsequence of the values the vehicle produced for that signal"."""
    wrong = 0
    for signal, values in stored.items():
        source = produced.get(signal, [])
        j = 0
        for value in values:
            k = j
            while k < len(source) and source[k] != value:
                k += 1
            if k == len(source):
                wrong += 1
            else:
                j = k + 1
    return wrong


class _Adapter:
    """One adapter under test: its port, how to stall it, what it produced."""

    def __init__(self, kind: AdapterKind) -> None:
        self.kind = kind
        self._stop: Callable[[], None]
        self.produced: Callable[[], list[bytes]]
        self.stall: Callable[[float], None]
        if kind == "simulator":
            from fleetlink.simulator.fleet import SimulatedVehicle

            sim = SimulatedVehicle(seed=11, style=0.7, latency_s=0.03)
            self.port = sim.start()
            self._stop = sim.stop
            self.stall = sim.elm327.stall
            self.produced = lambda: [
                p for request, p in sim.elm327.served() if request.startswith("01")
            ]
        else:
            self._start_peer()

    def _start_peer(self) -> None:
        import elm

        # Its serving thread would otherwise reconfigure root logging and write ./elm.log.
        elm.elm.setup_logging = lambda *args, **kwargs: None
        peer = elm.Elm()
        peer.set_sorted_obd_msg("car")
        peer.delay = 0.03
        replies: list[str] = []
        handle = peer.handle_request

        def recording(cmd: str, do_write: bool = False) -> tuple[object, object, object]:
            result: tuple[object, object, object] = handle(cmd, do_write=do_write)
            if isinstance(result[2], str):
                replies.append(result[2])
            return result

        peer.handle_request = recording
        peer.__enter__()
        deadline = time.monotonic() + 5
        while not peer.get_pty() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.port = str(peer.get_pty())
        self._stop = peer.terminate

        def stall(seconds: float) -> None:
            peer.threadState = peer.THREAD.PAUSED
            active = peer.THREAD.ACTIVE
            resume = threading.Timer(seconds, lambda: setattr(peer, "threadState", active))
            resume.daemon = True
            resume.start()

        self.stall = stall
        self.produced = lambda: [
            bytes.fromhex(m.group(1)) for r in list(replies) for m in [_DATA.search(r)] if m
        ]

    def stop(self) -> None:
        self._stop()


def _wait(predicate: Callable[[], bool], timeout_s: float) -> float | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.01)
    return None


def run_stall(
    kind: AdapterKind,
    stall_s: float,
    *,
    stall_after_s: float = 2.0,
    timeout_s: float = 0.5,
    rate_hz: float = 5.0,
    settle_s: float = 3.0,
    after_s: float = 4.0,
) -> StallRun:
    """Poll ``COMMANDS`` at ``rate_hz``, stall the adapter for ``stall_s``, keep polling for
    ``after_s`` after it answers again, and return the figures."""
    adapter = _Adapter(kind)
    settings = ObdSection(
        port=adapter.port,
        timeout_s=timeout_s,
        stall_after_s=stall_after_s,
        battery_rate_hz=0,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
        poll=[PollGroup(commands=list(COMMANDS), rate_hz=rate_hz)],
        strategy="one_pid",
        # Only the polled PIDs: every stored value is then checked against what was produced.
        dtc_interval_s=0,
    )
    source = ObdSource(settings)
    samples: queue.Queue[Sample] = queue.Queue()
    run = StallRun(kind, stall_s, stall_after_s)
    started = time.monotonic()

    def state_is(state: str) -> Callable[[], bool]:
        def check() -> bool:
            if not run.states or run.states[-1][1] != source.state:
                run.states.append((round(time.monotonic() - started, 2), source.state))
            return source.state == state

        return check

    source.start(samples)
    try:
        if _wait(state_is("connected"), 30) is None:
            raise RuntimeError(f"the source never connected to {kind} on {adapter.port}")
        time.sleep(settle_s)
        stalled_at = time.monotonic()
        adapter.stall(stall_s)
        seen = _wait(state_is("stalled"), stall_s)
        run.detection_s = None if seen is None else seen - stalled_at
        back = _wait(state_is("connected"), stall_s + 60)
        answered_at = stalled_at + stall_s
        run.recovery_s = None if back is None else max(0.0, back - answered_at)
        recovered_ms = time.time() * 1000
        time.sleep(after_s)
    finally:
        source.stop()
        adapter.stop()
    stored: dict[int, list[float]] = {}
    while not samples.empty():
        sample = samples.get_nowait()
        run.samples += 1
        stored.setdefault(sample.signal_id, []).append(sample.value)
        if back is not None and sample.time_ms > recovered_ms:
            run.samples_after_recovery[sample.signal_id] += 1
    produced: dict[int, list[float]] = {}
    for payload in adapter.produced():
        for pid, value in decode_payload(payload):
            produced.setdefault(pid, []).append(value)
    run.wrong_values = count_wrong(stored, produced)
    run.counters = Counter(source.counters)
    return run


def run_baseline(
    kind: AdapterKind,
    stall_s: float,
    *,
    timeout_s: float = 0.5,
    settle_s: float = 3.0,
    after_s: float = 4.0,
) -> StallRun:
    """The same stall read by python-obd's plain ``OBD.query`` loop (the agent before the
    checked link), its port timeout capped at ``timeout_s``; it has no stalled state."""
    adapter = _Adapter(kind)
    stored: dict[int, list[float]] = {}
    run = StallRun(kind, stall_s, 0.0)
    stop = threading.Event()
    connection = obd.OBD(adapter.port, fast=False, timeout=timeout_s)
    port = getattr(connection.interface, "_ELM327__port", None)
    if port is not None:
        port.timeout = timeout_s

    def loop() -> None:
        while not stop.is_set():
            for name in COMMANDS:
                value = connection.query(obd.commands[name]).value
                magnitude = getattr(value, "magnitude", None)
                if isinstance(magnitude, int | float):
                    stored.setdefault(obd.commands[name].pid, []).append(float(magnitude))
                    run.samples += 1

    reader = threading.Thread(target=loop, daemon=True)
    reader.start()
    try:
        time.sleep(settle_s)
        adapter.stall(stall_s)
        time.sleep(stall_s + after_s)
    finally:
        stop.set()
        reader.join(timeout=30)
        connection.close()
        adapter.stop()
    produced: dict[int, list[float]] = {}
    for payload in adapter.produced():
        for pid, value in decode_payload(payload):
            produced.setdefault(pid, []).append(value)
    run.wrong_values = count_wrong(stored, produced)
    return run


def report(
    kinds: list[AdapterKind], stalls_s: list[float], stall_after_s: float, baseline: bool
) -> str:
    """Run every (adapter, stall) pair and return the report, one line each, with python-obd's
    plain loop through the same stall beneath each when ``baseline`` is set."""
    lines = [
        f"{', '.join(COMMANDS)} polled at 5 Hz, one PID per request, request deadline 0.5 s, "
        f"stalled after {stall_after_s:g} s owed"
    ]
    for kind in kinds:
        for stall_s in stalls_s:
            lines.append(run_stall(kind, stall_s, stall_after_s=stall_after_s).line())
            if baseline:
                plain = run_baseline(kind, stall_s)
                lines.append(
                    f"  baseline: python-obd's plain loop, same stall: no stalled state, stored "
                    f"{plain.samples} samples, {plain.wrong_values} not what the vehicle "
                    f"produced for their signal"
                )
    return "\n".join(lines)
