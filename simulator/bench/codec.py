"""``fleetlink bench codec``: encode/decode speed and size of every wire format.

Each format (msgpack, CBOR, JSON) is measured with and without zstd on the same
realistic telemetry batches; figures are medians over the repetitions.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetlink.shared import codec
from fleetlink.shared.messages import Series, TelemetryBatch

# (catalog id, typical value, step, resolution): what a 10 Hz OBD poll of a moving car produces
_PROFILE: tuple[tuple[int, float, float, float], ...] = (
    (0x0C, 1800.0, 40.0, 0.25),
    (0x0D, 60.0, 1.0, 1.0),
    (0x04, 35.0, 2.0, 100 / 255),
    (0x11, 20.0, 1.5, 100 / 255),
    (0x05, 88.0, 0.1, 1.0),
    (0x0F, 30.0, 0.1, 1.0),
    (0x10, 12.0, 0.8, 0.01),
    (0x2F, 64.0, 0.01, 100 / 255),
    (256, 14.1, 0.02, 0.1),
    (257, 48.137, 0.0001, 1e-7),
    (258, 11.575, 0.0001, 1e-7),
)


def sample_batch(samples: int, seed: int = 1) -> TelemetryBatch:
    """Return a telemetry batch of about ``samples`` samples that looks like a real poll."""
    rng = random.Random(seed)
    per_signal = max(1, samples // len(_PROFILE))
    series = []
    for signal_id, value, step, resolution in _PROFILE:
        values, offsets = [], []
        for i in range(per_signal):
            value += rng.uniform(-step, step)
            values.append(round(value / resolution) * resolution)
            offsets.append(i * 100 + rng.randint(0, 30))
        series.append(Series(signal_id=signal_id, offsets_ms=offsets, values=values))
    return TelemetryBatch(
        device_id="bench-device-0001", seq=1, base_time_ms=1_780_000_000_000, series=series
    )


@dataclass(frozen=True)
class CodecFigures:
    name: str
    batch_samples: int
    bytes_per_sample: float
    encode_samples_s: float
    decode_samples_s: float


def _median_rate(fn: Callable[[], object], samples: int, repeat: int, min_time_s: float) -> float:
    rates = []
    for _ in range(repeat):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_time_s or n == 0:
            fn()
            n += 1
        rates.append(n * samples / elapsed)
    return statistics.median(rates)


def measure(batch_samples: int, repeat: int = 5, min_time_s: float = 0.2) -> list[CodecFigures]:
    """Return the figures of every format for batches of ``batch_samples`` samples."""
    batch = sample_batch(batch_samples)
    n = batch.sample_count
    results = []
    for fmt in codec.Format:
        for compress in (False, True):
            threshold = 0 if compress else None
            payload = codec.encode(batch, fmt, threshold)

            def encode(f: codec.Format = fmt, t: int | None = threshold) -> bytes:
                return codec.encode(batch, f, t)

            def decode(p: bytes = payload) -> TelemetryBatch:
                return codec.decode(p, TelemetryBatch)

            assert codec.decode(payload, TelemetryBatch) == batch
            name = fmt.name.lower() + ("+zstd" if compress else "")
            results.append(
                CodecFigures(
                    name=name,
                    batch_samples=n,
                    bytes_per_sample=len(payload) / n,
                    encode_samples_s=_median_rate(encode, n, repeat, min_time_s),
                    decode_samples_s=_median_rate(decode, n, repeat, min_time_s),
                )
            )
    return results


def report(sizes: tuple[int, ...] = (100, 1000), repeat: int = 5) -> str:
    """Return the benchmark as a Markdown table (the form docs/benchmarks.md keeps)."""
    lines = [
        "| batch samples | format | bytes/sample | encode samples/s | decode samples/s |",
        "|---:|---|---:|---:|---:|",
    ]
    for size in sizes:
        for f in measure(size, repeat):
            lines.append(
                f"| {f.batch_samples} | {f.name} | {f.bytes_per_sample:.2f} | "
                f"{f.encode_samples_s:,.0f} | {f.decode_samples_s:,.0f} |"
            )
    return "\n".join(lines)
