"""An open-loop HTTP load generator: requests leave on a fixed schedule, whatever the server does.

Request *i* is due at ``t0 + i / rate``; its latency runs from that due time to the end of the
response body, so a server that falls behind shows it in the latency instead of silently
slowing the client down (no coordinated omission). At most ``max_in_flight`` requests are
outstanding; a request due while the limit is reached waits, and its wait counts as latency.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp


@dataclass(frozen=True, slots=True)
class RequestSpec:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    """Latencies in milliseconds of the requests that completed, and what went wrong."""

    scheduled: int
    duration_s: float  # from the first due time to the last response
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate_per_s(self) -> float:
        """Completed requests per second of the run."""
        return self.completed / self.duration_s if self.duration_s else 0.0

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile latency (nearest rank), in milliseconds."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms, default=float("nan"))


async def run_open_loop(
    session: aiohttp.ClientSession,
    requests: Sequence[RequestSpec],
    rate_per_s: float,
    duration_s: float,
    max_in_flight: int = 2000,
) -> LoadResult:
    """Send ``requests`` round-robin at ``rate_per_s`` for ``duration_s``; return the result.

    A response other than 2xx, or a connection error, is counted in ``errors`` by status or
    exception name and not in the latencies.
    """
    total = int(rate_per_s * duration_s)
    result = LoadResult(scheduled=total, duration_s=duration_s)
    slots = asyncio.Semaphore(max_in_flight)
    loop = asyncio.get_running_loop()

    async def one(spec: RequestSpec, due: float) -> None:
        try:
            async with (
                slots,
                session.request(spec.method, spec.url, headers=spec.headers) as resp,
            ):
                await resp.read()
                if resp.status >= 300:
                    result.errors[str(resp.status)] += 1
                    return
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            result.errors[type(exc).__name__] += 1
            return
        result.latencies_ms.append((loop.time() - due) * 1000)

    tasks = []
    start = loop.time() + 0.05
    for i in range(total):
        due = start + i / rate_per_s
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i % len(requests)], due)))
    await asyncio.gather(*tasks)
    result.duration_s = max(duration_s, loop.time() - start)  # until the last response
    return result


def format_table(results: dict[str, list[LoadResult]], rate_per_s: float) -> str:
    """Return one line per target: the offered rate, and the medians over its runs of the rate
    reached, P50, P99 and max latency; errors summed over the runs."""
    lines = [
        f"{'target':<28} {'offered/s':>9} {'reached/s':>9} {'P50 ms':>8} {'P99 ms':>8} "
        f"{'max ms':>8}  errors   (medians over runs; P99 of each run: …)"
    ]
    for name, runs in results.items():
        errors: Counter[str] = Counter()
        for r in runs:
            errors.update(r.errors)
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "-"
        p99s = ", ".join(f"{r.p99_ms:.1f}" for r in runs)
        lines.append(
            f"{name:<28} {rate_per_s:>9.0f} {statistics.median(r.rate_per_s for r in runs):>9.0f} "
            f"{statistics.median(r.p50_ms for r in runs):>8.1f} "
            f"{statistics.median(r.p99_ms for r in runs):>8.1f} "
            f"{statistics.median(r.max_ms for r in runs):>8.1f}  {shown}   ({p99s})"
        )
    return "\n".join(lines)
