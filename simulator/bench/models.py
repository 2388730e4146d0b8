"""``fleetlink bench models``: the shipped anomaly model against the rule baseline, its
per-window inference time beside a numpy forward pass of the same weights, and the agent
process's peak RSS with the model loaded beside the same process without it."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetlink.edge.anomaly.runtime import LoadedModel, load_model
from fleetlink.edge.anomaly.windows import window_vector
from fleetlink.firmware_profiles import load_profile, profile_folder
from fleetlink.simulator.dataset import generate, plan_drives
from fleetlink.simulator.training.evaluate import (
    evaluate,
    model_detector,
    rule_detector,
    tight_thresholds,
)
from fleetlink.simulator.training.evaluate import (
    report as evaluation_report,
)

PROFILE = "fleetlink-sim-car"

# Run in a child process so that only what the agent imports counts towards the peak RSS.
_RSS_PROBE = """
import sys
from fleetlink.edge.agent import Agent  # noqa: F401  (the agent's own imports)
if sys.argv[1] == "model":
    import numpy as np
    from fleetlink.edge.anomaly.runtime import AnomalyModels
    from fleetlink.firmware_profiles import load_profile, profile_folder
    models = AnomalyModels.for_profile(load_profile("{profile}"), profile_folder("{profile}"))
    assert models, models.status
    for second in range(120):
        for sid in (12, 13, 4, 17, 16, 5, 256):
            models.observe(sid, 1_000_000 + second * 1000, 1.0 + second % 7)
        models.tick(1_000_000 + second * 1000)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM"):
        print(line.split()[1])
"""


def _peak_rss_kb(with_model: bool) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE.format(profile=PROFILE), "model" if with_model else "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def _numpy_forward(model: LoadedModel) -> Any:
    """Return a function running the model's dense layers in float numpy with its
    dequantised int8 weights (the baseline the LiteRT timing is compared with)."""
    interpreter = model.scorer._interpreter
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    layers = []
    for op in interpreter._get_ops_details():
        if op["op_name"] != "FULLY_CONNECTED":
            continue
        _, w_index, b_index = op["inputs"]
        w_detail, b_detail = tensors[w_index], tensors[b_index]
        w_scales = w_detail["quantization_parameters"]["scales"]
        b_scales = b_detail["quantization_parameters"]["scales"]
        weights = interpreter.get_tensor(w_index).astype(np.float32) * w_scales[:, None]
        bias = interpreter.get_tensor(b_index).astype(np.float32) * b_scales
        layers.append((weights.T.copy(), bias))

    def forward(z: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        x = z
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if i < len(layers) - 1:
                x = np.maximum(x, 0.0)
        return x

    return forward


def _median_us(fn: Any, windows: list[npt.NDArray[np.float64]]) -> float:
    times = []
    for rows in windows:
        start = time.perf_counter_ns()
        fn(rows)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000.0


def report(normal: int, faulty: int, minutes: float, seed: int) -> str:
    """Return the benchmark's lines: detection figures of model and rules on the same
    held-out drives, per-window time (LiteRT int8 vs numpy float), and peak RSS."""
    profile = load_profile(PROFILE)
    model = load_model(profile.models[0], profile_folder(PROFILE))
    card = model.card
    dataset = generate(plan_drives(normal, faulty, int(minutes * 60), seed))
    ours = evaluate(dataset, model_detector(card, model.scorer))
    baselines = {
        name: evaluate(dataset, rule_detector(limits, dataset.features, card.consecutive))
        for name, limits in (
            ("rules", profile.alerts),
            ("tight", tight_thresholds(profile.alerts)),
        )
    }
    lines = [
        evaluation_report(
            ours,
            baselines,
            f"fleetlink bench models: {card.name} vs the [alerts] thresholds (rules) and tighter "
            f"ones (tight) on "
            f"{len(dataset.specs)} held-out drives (seed {seed})",
        )
    ]

    windows = [
        dataset.rows[s : s + card.window_rows].astype(np.float64)
        for s in range(0, min(dataset.rows.shape[0], 300_000) - card.window_rows, 97)
    ][:3000]
    forward = _numpy_forward(model)
    # Sanity: the baseline computes the same thing, up to int8 rounding (median over windows).
    gaps = []
    for rows in windows[:200]:
        probe = model.scorer.standardise(window_vector(rows))
        model.scorer._set_input(probe)
        model.scorer._interpreter.invoke()
        gaps.append(float(np.abs(model.scorer._get_output() - forward(probe.reshape(1, -1))).max()))
    gap = statistics.median(gaps)

    def litert(rows: npt.NDArray[np.float64]) -> None:
        model.scorer.score(window_vector(rows))

    def numpy_float(rows: npt.NDArray[np.float64]) -> None:
        z = model.scorer.standardise(window_vector(rows)).reshape(1, -1)
        err = (forward(z) - z) ** 2
        err.reshape(len(card.features), -1).mean(axis=1).max()

    litert_us = _median_us(litert, windows)
    numpy_us = _median_us(numpy_float, windows)
    lines.append(
        f"per window (features + score), median of {len(windows)}: LiteRT int8 "
        f"{litert_us:.0f} us, numpy float32 same weights {numpy_us:.0f} us "
        f"(outputs differ by {gap:.3f} at most per window, median); target <= 1000 us"
    )
    without_kb = _peak_rss_kb(False)
    with_kb = _peak_rss_kb(True)
    lines.append(
        f"agent process peak RSS (VmHWM): {with_kb / 1024:.1f} MB with the model loaded and "
        f"scoring, {without_kb / 1024:.1f} MB without it; target <= 80 MB"
    )
    return "\n".join(lines)
