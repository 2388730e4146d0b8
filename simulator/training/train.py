"""Train the autoencoder, quantise it to int8 and write the model and its card.

Needs TensorFlow (``pip install 'fleetlink[train]'``); imported only by ``fleetlink models
train``. The model learns to reconstruct standardised window vectors of normal drives; its
threshold is set on normal drives it never saw (see :func:`calibrate_threshold`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetlink.edge.anomaly.card import Gate, ModelCard, card_path, write_card
from fleetlink.edge.anomaly.scorer import Scorer
from fleetlink.simulator.dataset import Dataset
from fleetlink.simulator.training.evaluate import VEHICLE_DAY_H
from fleetlink.simulator.training.windows import HOP_ROWS, WINDOW_ROWS, split_normal, vectors_of

CONSECUTIVE = 3
THRESHOLD_MARGIN = 1.1
_RPM = "Vehicle.Powertrain.CombustionEngine.Speed"


@dataclass
class Trained:
    """What training wrote: the model file, its card and the calibration figures."""

    model_path: Path
    card: ModelCard


def _build(width: int, seed: int) -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(shape=(width,), name="window")
    x = tf.keras.layers.Dense(32, activation="relu")(inputs)
    x = tf.keras.layers.Dense(8, activation="relu")(x)
    x = tf.keras.layers.Dense(32, activation="relu")(x)
    outputs = tf.keras.layers.Dense(width, name="reconstruction")(x)
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer=tf.keras.optimizers.Adam(2e-3), loss="mse")
    return model


def _quantise(model: Any, representative: npt.NDArray[np.float32]) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def samples() -> Iterator[list[npt.NDArray[np.float32]]]:
        for row in representative:
            yield [row.reshape(1, -1)]

    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    data: bytes = converter.convert()
    return data


def calibrate_threshold(scores_per_drive: list[npt.NDArray[np.float64]], consecutive: int) -> float:
    """Return the threshold: the highest score that ``consecutive`` windows in a row all
    reached on the normal calibration drives, times :data:`THRESHOLD_MARGIN`, so none of
    those drives would raise an alarm."""
    floor = 0.0
    for scores in scores_per_drive:
        if scores.shape[0] < consecutive:
            continue
        runs = np.lib.stride_tricks.sliding_window_view(scores, consecutive).min(axis=1)
        floor = max(floor, float(runs.max()))
    return floor * THRESHOLD_MARGIN


def window_scores(scorer: Scorer, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Return the score of each window vector."""
    return np.asarray([scorer.score(v)[0] for v in vectors], dtype=np.float64)


def train(
    dataset: Dataset,
    out_dir: Path,
    name: str,
    epochs: int = 60,
    seed: int = 0,
) -> Trained:
    """Train on ``dataset``'s normal drives; write ``<name>.tflite`` and its card to
    ``out_dir``; return both.

    Raises:
        ValueError: the dataset has too few normal drives to train and calibrate.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    split = split_normal(dataset)
    if not split.train or not split.calibrate:
        raise ValueError("the dataset needs at least two normal drives (train and calibrate)")
    train_x = vectors_of(dataset, split.train)
    if train_x.shape[0] < 16:
        raise ValueError(f"only {train_x.shape[0]} training windows: generate longer drives")
    mean = train_x.mean(axis=0)
    scale = np.maximum(train_x.std(axis=0), 1e-3)
    z = ((train_x - mean) / scale).astype(np.float32)

    model = _build(z.shape[1], seed)
    model.fit(z, z, epochs=epochs, batch_size=128, shuffle=True, verbose=0)
    rng = np.random.default_rng(seed)
    representative = z[rng.choice(z.shape[0], size=min(500, z.shape[0]), replace=False)]
    tflite = _quantise(model, representative)

    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / f"{name}.tflite"
    model_path.write_bytes(tflite)
    digest = hashlib.sha256(tflite).hexdigest()
    features = list(dataset.features)
    draft = ModelCard(
        name=name,
        model_sha256=digest,
        features=features,
        window_rows=WINDOW_ROWS,
        hop_rows=HOP_ROWS,
        consecutive=CONSECUTIVE,
        threshold=1.0,
        mean=[float(v) for v in mean],
        scale=[float(v) for v in scale],
        gate=Gate(signal=_RPM, min_value=300.0) if _RPM in features else None,
    )
    scorer = Scorer(model_path, draft)
    calibration = [window_scores(scorer, vectors_of(dataset, [d])) for d in split.calibrate]
    threshold = calibrate_threshold(calibration, CONSECUTIVE)
    train_scores = window_scores(scorer, train_x[:2000])
    calibration_hours = sum(dataset.drive(d).shape[0] for d in split.calibrate) / 3600.0
    card = draft.model_copy(
        update={
            "threshold": threshold,
            "metrics": {
                "train_windows": int(train_x.shape[0]),
                "train_score_median": round(float(np.median(train_scores)), 4),
                "calibration_drives": len(split.calibrate),
                "calibration_vehicle_days": round(calibration_hours / VEHICLE_DAY_H, 2),
                "model_bytes": len(tflite),
            },
            "trained_on": {
                "drives": len(dataset.specs),
                "normal_train_drives": len(split.train),
                "epochs": epochs,
                "seed": seed,
            },
        }
    )
    write_card(card_path(model_path), card)
    return Trained(model_path=model_path, card=card)


def profile_block(trained: Trained, file: str) -> str:
    """Return the ``[[models]]`` TOML block that names ``trained`` (``file`` relative to the
    profile)."""
    features = json.dumps(trained.card.features, indent=4).replace("\n]", ",\n]")
    return (
        f'[[models]]\nname = "{trained.card.name}"\nfile = "{file}"\n'
        f'sha256 = "{trained.card.model_sha256}"\nfeatures = {features}\n'
    )
