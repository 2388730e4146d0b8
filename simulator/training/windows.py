"""A dataset's drives cut into windows, with the labels evaluation needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetlink.edge.anomaly.windows import window_vectors
from fleetlink.simulator.dataset import Dataset

WINDOW_ROWS = 30
HOP_ROWS = 5


@dataclass
class Split:
    """Which drives train the model, which calibrate its threshold."""

    train: list[int]
    calibrate: list[int]


def split_normal(dataset: Dataset, calibrate_share: float = 0.25) -> Split:
    """Return the normal drives split into training and calibration drives (every
    ``1/calibrate_share``-th normal drive calibrates)."""
    normal = [i for i, s in enumerate(dataset.specs) if s.fault is None]
    every = max(2, round(1 / calibrate_share))
    return Split(
        train=[d for k, d in enumerate(normal) if k % every != 0],
        calibrate=[d for k, d in enumerate(normal) if k % every == 0],
    )


def vectors_of(
    dataset: Dataset, drives: list[int], window: int = WINDOW_ROWS, hop: int = HOP_ROWS
) -> npt.NDArray[np.float32]:
    """Return the window vectors of ``drives`` (each drive windowed on its own)."""
    parts = [window_vectors(dataset.drive(i), window, hop) for i in drives]
    parts = [p for p in parts if p.shape[0]]
    if not parts:
        return np.zeros((0, len(dataset.features) * 3), dtype=np.float32)
    return np.concatenate(parts)
