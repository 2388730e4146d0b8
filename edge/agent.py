"""The agent's asyncio core: sources → batcher → outbox → uplink.

The core only drains the sources' queue; it does not know what kind of source fills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
from collections import Counter, deque

from fleetlink.edge.batcher import Batcher, Draft
from fleetlink.edge.config import DeviceConfig
from fleetlink.edge.outbox import Outbox, OutboxError
from fleetlink.edge.sources import SampleQueue, Source, create_sources
from fleetlink.edge.sources.base import AdapterState
from fleetlink.edge.uplink import Uplink
from fleetlink.shared.codec import encode

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
        self.sources = create_sources(config) if sources is None else sources
        self.outbox = Outbox(config.outbox.path, config.outbox.max_batches)
        self.batcher = Batcher(config.outbox.batch_interval_s, config.outbox.max_batch_samples)
        self.uplink = Uplink(config.device, config.mqtt, self.outbox, self.adapter_state)
        self.unstored: deque[Draft] = deque()
        self.counters: Counter[str] = Counter()
        self._outbox_failing = False

    def adapter_state(self) -> AdapterState:
        """Return the first source's link state ("unknown" with no sources)."""
        return self.sources[0].state if self.sources else "unknown"

    def _drain(self) -> None:
        while True:
            try:
                sample = self.samples.get_nowait()
            except queue.Empty:
                return
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
                self.unstored.popleft()
                self.counters["dropped_unstored"] += 1
        device_id = self.config.device.id
        seq = None
        while self.unstored:
            pending = self.unstored[0]

            def payload(seq: int, draft: Draft = pending) -> bytes:
                return encode(draft.to_message(device_id, seq))

            try:
                seq = self.outbox.add("telemetry", payload)
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
        for source in self.sources:
            source.start(self.samples)
        uplink_stop = asyncio.Event()
        uplink = asyncio.create_task(self.uplink.run(uplink_stop), name="uplink")
        state = self.adapter_state()
        log.info("agent for device %s started", self.config.device.id)
        try:
            while not stop.is_set() and not uplink.done():
                self._drain()
                if self.batcher.due():
                    self.flush()
                if self.adapter_state() != state:
                    state = self.adapter_state()
                    self.uplink.publish_status()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _DRAIN_EVERY_S)
        finally:
            await asyncio.gather(*(asyncio.to_thread(s.stop) for s in self.sources))
            self._drain()
            self.flush()
            await self._drain_outbox(self.config.mqtt.drain_on_stop_s, uplink)
            uplink_stop.set()
            try:
                await uplink
            finally:
                self.outbox.close()
                log.info("agent for device %s stopped", self.config.device.id)

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
