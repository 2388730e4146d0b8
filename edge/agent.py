"""The agent's asyncio core: sources → batcher → outbox → uplink, with the alert engine
tapping the samples and the events on their way.

The core only drains the sources' queues (samples, and events such as the ignition going
off); it does not know what kind of source fills them. Every event passes through the alert
engine (``fleetlink.edge.alerts``), which tells the driver of the ones it nudges for and adds
its own (alerts, escalations, acknowledgements) to the same acked path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
from collections import Counter, deque
from collections.abc import Callable

from fleetlink.edge.alerts.setup import create_engine
from fleetlink.edge.anomaly.setup import models_for, waits_for_detected_profile
from fleetlink.edge.batcher import Batcher, Draft
from fleetlink.edge.config import DeviceConfig
from fleetlink.edge.fences import FenceStore, fence_path
from fleetlink.edge.gaps import Gap
from fleetlink.edge.outbox import Outbox, OutboxError
from fleetlink.edge.sources import EventQueue, SampleQueue, Source, create_sources
from fleetlink.edge.sources.base import AdapterState
from fleetlink.edge.uplink import Uplink
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import (
    MAX_EVENTS_PER_BATCH,
    CanStatus,
    Event,
    EventBatch,
    ObdbStatus,
    VehicleReport,
)

log = logging.getLogger(__name__)

_DRAIN_EVERY_S = 0.05
_QUEUE_SIZE = 10_000
# Batches held in memory while the outbox refuses writes (a full or failing disk): about ten
# minutes at one batch a second; past that the oldest are dropped and counted.
_UNSTORED_MAX = 600


class Agent:
    """One device's agent. Build it from a config, then ``await agent.run(stop)``.

    ``sources`` replaces the sources the config asks for (tests, or a custom build).

    Raises:
        OutboxError: (from the constructor) the outbox database cannot be opened.
    """

    def __init__(self, config: DeviceConfig, sources: list[Source] | None = None) -> None:
        self.config = config
        self.samples: SampleQueue = queue.Queue(maxsize=_QUEUE_SIZE)
        self.events: EventQueue = queue.Queue(maxsize=_QUEUE_SIZE)
        self.sources = create_sources(config) if sources is None else sources
        self.outbox = Outbox(config.outbox.path, config.outbox.max_bytes)
        # Called on every turn of the main loop (the systemd watchdog's pet, see device_runner).
        self.heartbeat: Callable[[], None] = lambda: None
        self.batcher = Batcher(
            config.outbox.batch_interval_s,
            config.outbox.max_batch_samples,
            offline_interval_s=config.outbox.offline_batch_interval_s,
        )
        self.fences = FenceStore(fence_path(config.outbox.path))
        self.uplink = Uplink(
            config.device,
            config.mqtt,
            self.outbox,
            self.adapter_state,
            can_status=self.can_status,
            vehicle_report=self.vehicle_report,
            obdb_status=self.obdb_status,
            fences=self.fences,
        )
        self.alerts = create_engine(config, lambda: self.fences.current)
        # Imported models (LiteRT) load here, once; one that cannot run is reported, not fatal.
        self.anomaly = models_for(config)
        if self.anomaly is not None:
            self.uplink.running["models"] = dict(self.anomaly.status)
        # With obd.profile = "auto", the models are those of the profile picked at connect.
        self._models_wait = waits_for_detected_profile(config)
        self.unstored: deque[Draft] = deque()
        self.unstored_events: deque[Event] = deque(maxlen=_UNSTORED_MAX)
        self.counters: Counter[str] = Counter()
        # Batches dropped from ``unstored``: stored as a gap record once the outbox writes again.
        self.unstored_gap = Gap("memory_overflow")
        self._outbox_failing = False

    def adapter_state(self) -> AdapterState:
        """Return the first source's link state ("unknown" with no sources)."""
        return self.sources[0].state if self.sources else "unknown"

    def can_status(self) -> CanStatus | None:
        """Return the first CAN source's bus state and counters (None without one)."""
        for source in self.sources:
            status = source.can_status()
            if status is not None:
                return status
        return None

    def vehicle_report(self) -> VehicleReport | None:
        """Return the first vehicle report a source gives (None when none gives one)."""
        for source in self.sources:
            report = source.vehicle_report()
            if report is not None:
                return report
        return None

    def obdb_status(self) -> ObdbStatus | None:
        """Return the first OBDb polling counts a source gives (None when none polls)."""
        for source in self.sources:
            status = source.obdb_status()
            if status is not None:
                return status
        return None

    def _status_key(self) -> tuple[AdapterState, str | None, int]:
        can = self.can_status()
        bus = None if can is None else can.bus
        return self.adapter_state(), bus, sum(s.report_changes for s in self.sources)

    def store_events(self) -> int | None:
        """Store the events the sources sent, passed through the alert engine, and those the
        engine made (alerts, escalations, acknowledgements) as one events batch; return its
        seq, or None.

        Events the outbox refuses wait in memory (the newest ``_UNSTORED_MAX``) and are
        retried on the next call.
        """
        while len(self.unstored_events) < MAX_EVENTS_PER_BATCH:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if self.alerts is None:
                self.unstored_events.append(event)
            else:
                self.alerts.observe_event(event)
                self.unstored_events.extend(self.alerts.take_events())
        if self.alerts is not None:
            self.unstored_events.extend(self.alerts.take_events())
        if not self.unstored_events:
            return None
        events = list(self.unstored_events)[:MAX_EVENTS_PER_BATCH]
        device_id = self.config.device.id

        def payload(seq: int) -> bytes:
            return encode(EventBatch(device_id=device_id, seq=seq, events=events))

        try:
            seq = self.outbox.add("events", payload)
        except OutboxError as exc:
            self.counters["outbox_event_write_failures"] += 1
            log.error("%s; keeping %d events in memory", exc, len(self.unstored_events))
            return None
        for _ in events:
            self.unstored_events.popleft()
        self.uplink.wake()
        return seq

    def _drain(self) -> None:
        while True:
            try:
                sample = self.samples.get_nowait()
            except queue.Empty:
                return
            if self.alerts is not None:
                self.alerts.observe(sample)
            if self.anomaly:
                self.anomaly.observe(sample.signal_id, sample.time_ms, sample.value)
            if self.batcher.add(sample):
                self.flush()

    def flush(self) -> int | None:
        """Store the current batch, and any the outbox refused before, in the outbox.

        Returns the seq of the last batch stored, or None if nothing was stored. While the
        outbox refuses writes the batches wait in memory (``unstored``) and are retried on
        every flush; beyond ``_UNSTORED_MAX`` the oldest is dropped and counted.
        """
        draft = self.batcher.take()
        if draft is not None:
            self.unstored.append(draft)
            if len(self.unstored) > _UNSTORED_MAX:
                dropped = self.unstored.popleft()
                self.unstored_gap.add_telemetry(dropped.to_message(self.config.device.id, 1))
                self.counters["dropped_unstored"] += 1
        device_id = self.config.device.id
        compress_above = self.config.outbox.compress_above_bytes
        seq = None
        while self.unstored:
            pending = self.unstored[0]

            def payload(seq: int, draft: Draft = pending) -> bytes:
                return encode(draft.to_message(device_id, seq), compress_above=compress_above)

            try:
                if self.unstored_gap:
                    self.outbox.add_gap(self.unstored_gap)
                    self.unstored_gap = Gap("memory_overflow")
                seq = self.outbox.add("telemetry", payload, len(pending.samples))
            except OutboxError as exc:
                self.counters["outbox_write_failures"] += 1
                if not self._outbox_failing:
                    log.error("%s; keeping %d batches in memory", exc, len(self.unstored))
                self._outbox_failing = True
                break
            self.unstored.popleft()
            if self._outbox_failing:
                log.info("the outbox stores batches again")
                self._outbox_failing = False
        if seq is not None:
            self.uplink.wake()
        return seq

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop the sources, store the last partial batch, and
        give the cloud up to ``mqtt.drain_on_stop_s`` to ack what is buffered.

        Raises:
            Exception: whatever the uplink task raised, after the batch was stored.
        """
        if self.alerts is not None:
            self.alerts.start()
        metrics_server = None
        if self.config.metrics.port:
            from fleetlink.edge.metrics import serve_metrics

            metrics_server = serve_metrics(self, self.config.metrics.port)
        for source in self.sources:
            source.start(self.samples, self.events)
        uplink_stop = asyncio.Event()
        uplink = asyncio.create_task(self.uplink.run(uplink_stop), name="uplink")
        state = self._status_key()
        log.info("agent for device %s started", self.config.device.id)
        try:
            while not stop.is_set() and not uplink.done():
                self._drain()
                self._score_windows()
                self.batcher.online = self.uplink.ready
                if self.alerts is not None:
                    self.alerts.poll()
                if not self.events.empty() or (self.alerts is not None and self.alerts.pending):
                    self.store_events()
                if self.batcher.due():
                    self.flush()
                if self._status_key() != state:
                    state = self._status_key()
                    self.load_models_of_detected_profile()
                    self.uplink.publish_status()
                self.heartbeat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _DRAIN_EVERY_S)
        finally:
            await asyncio.gather(*(asyncio.to_thread(s.stop) for s in self.sources))
            self._drain()
            self.flush()
            if self.alerts is not None:
                self.alerts.poll()
            self.store_events()
            await self._drain_outbox(self.config.mqtt.drain_on_stop_s, uplink)
            uplink_stop.set()
            try:
                await uplink
            finally:
                if metrics_server is not None:
                    metrics_server.shutdown()  # type: ignore[attr-defined]
                self.outbox.close()
                if self.alerts is not None:
                    self.alerts.close()
                log.info("agent for device %s stopped", self.config.device.id)

    def load_models_of_detected_profile(self) -> None:
        """Once the OBD source has picked a profile at connect, load that profile's models
        (when the configuration names no profile of its own); they run from then on, also
        after reconnects."""
        if not self._models_wait:
            return
        report = self.vehicle_report()
        if report is None or not report.profile:
            return
        self._models_wait = False
        self.anomaly = models_for(self.config, report.profile)
        if self.anomaly is not None:
            self.uplink.running["models"] = dict(self.anomaly.status)
            log.info("models of the detected profile %s: %s", report.profile, self.anomaly.status)

    def _score_windows(self) -> None:
        """Put the anomaly events of the windows due now on the event queue."""
        if not self.anomaly:
            return
        for event in self.anomaly.tick():
            try:
                self.events.put_nowait(event)
            except queue.Full:
                self.counters["anomaly_events_dropped"] += 1

    async def _drain_outbox(self, grace_s: float, uplink: asyncio.Task[None]) -> None:
        """While connected, wait up to ``grace_s`` for the cloud to ack what is buffered."""
        deadline = asyncio.get_running_loop().time() + grace_s
        self.uplink.wake()
        while (
            self.uplink.ready
            and len(self.outbox) > 0
            and not uplink.done()
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)


def run_agent_with(config: DeviceConfig, sources: list[Source]) -> None:
    """Run the agent with ``sources`` instead of those the config asks for, without remote
    updates (``fleetlink edge run`` is :func:`~fleetlink.edge.device_runner.run_device`),
    until SIGINT or SIGTERM; return after a clean stop."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await Agent(config, sources).run(stop)

    asyncio.run(main())
