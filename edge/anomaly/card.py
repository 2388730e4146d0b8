"""The model card: everything besides the weights that scoring a window needs.

It sits beside the ``.tflite`` file with the same stem and a ``.json`` suffix. The profile's
``[[models]]`` entry pins the ``.tflite`` file's SHA-256; the card repeats that hash and the
feature list, so a card that belongs to another model is refused too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Statistics computed per feature over a window, in this order (see windows.window_vector).
WINDOW_STATS = ("mean", "log_std", "log_step")


class ModelUnavailableError(Exception):
    """A model cannot run on this vehicle; the message says which model and why."""


class Gate(BaseModel):
    """Rows count only while ``signal`` is at least ``min_value`` (e.g. the engine runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: str
    min_value: float


class ModelCard(BaseModel):
    """What the trainer wrote about one model (JSON beside the ``.tflite`` file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    name: str
    model_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    features: Annotated[list[str], Field(min_length=1)]
    window_rows: Annotated[int, Field(ge=2, le=3600)]
    hop_rows: Annotated[int, Field(ge=1, le=3600)]
    row_interval_ms: Annotated[int, Field(ge=10, le=60_000)] = 1000
    consecutive: Annotated[int, Field(ge=1, le=100)]
    threshold: Annotated[float, Field(gt=0)]
    mean: list[float]
    scale: list[float]
    gate: Gate | None = None
    stale_after_s: Annotated[float, Field(gt=0)] = 300.0
    quiet_after_s: Annotated[float, Field(gt=0)] = 10.0
    metrics: dict[str, float | int | str] = Field(default_factory=dict)
    trained_on: dict[str, float | int | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _scaler_fits(self) -> ModelCard:
        width = len(self.features) * len(WINDOW_STATS)
        if len(self.mean) != width or len(self.scale) != width:
            raise ValueError(f"mean and scale need {width} values (features x {WINDOW_STATS})")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scale values must be > 0")
        if self.gate is not None and self.gate.signal not in self.features:
            raise ValueError(f"gate: {self.gate.signal!r} is not one of the features")
        return self

    @property
    def width(self) -> int:
        """Return the length of the model's input vector."""
        return len(self.features) * len(WINDOW_STATS)


def card_path(model_path: Path) -> Path:
    """Return where the card of the model file ``model_path`` lives."""
    return model_path.with_suffix(".json")


def read_card(path: Path) -> ModelCard:
    """Return the model card at ``path``.

    Raises:
        ModelUnavailableError: the file is missing, not JSON, or not a valid card.
    """
    try:
        return ModelCard.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ModelUnavailableError(
            f"{path}: cannot read the model card ({exc.strerror})"
        ) from None
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelUnavailableError(f"{path}: not a valid model card: {' '.join(first)}") from None


def write_card(path: Path, card: ModelCard) -> None:
    """Write ``card`` to ``path`` as indented JSON; return None."""
    path.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
