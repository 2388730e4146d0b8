"""The garbage collector's settings for the long-running cloud processes (D105).

The ingest allocates a few hundred objects per message (decoded payloads, validated models,
rows) and keeps large caches (series ids, partitions). With CPython's defaults a young
collection runs every 700 allocations, and the older generations are scanned again and again
as those caches grow: in the small-batch benchmark that was a visible share of the ingest's
CPU, spread over whatever allocated. So once a process has started, what is alive then
(modules, settings, the app) is frozen, never scanned again, and young collections run every
``gc_young_threshold`` allocations. Reference cycles are still collected, only less often;
almost everything the ingest allocates is freed by reference counting anyway.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def tune(young_threshold: int) -> None:
    """Freeze what is alive now and collect the young generation every ``young_threshold``
    allocations; 0 keeps CPython's defaults."""
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
    log.debug("gc: %d objects frozen, young threshold %d", gc.get_freeze_count(), young_threshold)
