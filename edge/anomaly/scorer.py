"""Runs one model on one window vector with LiteRT (``ai-edge-litert``), never TensorFlow.

A feature's error is the mean squared reconstruction error of its statistics in the
standardised window vector; the window's score is the largest feature error, so one signal
far off (a coolant running hot) is not averaged away by six that look right. The ranked
feature errors name the signals that look wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetlink.edge.anomaly.card import WINDOW_STATS, ModelCard, ModelUnavailableError


def _interpreter_class() -> Any:
    """Return LiteRT's Interpreter class, else tflite-runtime's.

    Raises:
        ModelUnavailableError: neither is installed.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        raise ModelUnavailableError(
            "no TensorFlow Lite runtime: pip install ai-edge-litert (fleetlink[edge])"
        ) from None


class Scorer:
    """One loaded model: ``score(vector)`` returns the window's score and per-feature errors.

    Raises:
        ModelUnavailableError: (from the constructor) the file is not a model LiteRT can run,
            or its input or output does not have the card's width.
    """

    def __init__(self, model_path: Path, card: ModelCard) -> None:
        interpreter_class = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_path=str(model_path), num_threads=1)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelUnavailableError(f"{model_path}: LiteRT cannot load it ({exc})") from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        width = card.width
        if (
            len(inputs) != 1
            or len(outputs) != 1
            or list(inputs[0]["shape"]) != [1, width]
            or list(outputs[0]["shape"]) != [1, width]
        ):
            raise ModelUnavailableError(
                f"{model_path}: the model's input/output is not [1, {width}] as its card "
                f"({len(card.features)} features) needs"
            )
        self._input = inputs[0]
        self._output = outputs[0]
        self._mean = np.asarray(card.mean, dtype=np.float32)
        self._scale = np.asarray(card.scale, dtype=np.float32)
        self._features = len(card.features)

    def standardise(self, vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Return ``vector`` standardised with the card's scaler."""
        return ((vector - self._mean) / self._scale).astype(np.float32)

    def score(self, vector: npt.NDArray[np.float32]) -> tuple[float, npt.NDArray[np.float32]]:
        """Return the window's score (the largest feature error) and each feature's mean
        squared error (card order)."""
        z = self.standardise(vector)
        self._set_input(z)
        self._interpreter.invoke()
        out = self._get_output()
        err = (out - z) ** 2
        per_feature = err.reshape(self._features, len(WINDOW_STATS)).mean(axis=1)
        return float(per_feature.max()), per_feature

    def _set_input(self, z: npt.NDArray[np.float32]) -> None:
        detail = self._input
        if detail["dtype"] == np.float32:
            self._interpreter.set_tensor(detail["index"], z.reshape(1, -1))
            return
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        q = np.clip(np.round(z / scale + zero), info.min, info.max).astype(detail["dtype"])
        self._interpreter.set_tensor(detail["index"], q.reshape(1, -1))

    def _get_output(self) -> npt.NDArray[np.float32]:
        detail = self._output
        raw = self._interpreter.get_tensor(detail["index"]).reshape(-1)
        if detail["dtype"] == np.float32:
            return raw.astype(np.float32)
        scale, zero = detail["quantization"]
        return ((raw.astype(np.float32) - zero) * scale).astype(np.float32)
