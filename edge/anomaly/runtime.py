"""A profile's models, loaded for the agent: the ones that can run, and why the others cannot.

A model runs only when its file is there, its SHA-256 is the one the profile pins, its card
matches, LiteRT loads it, and the vehicle provides every feature it reads. Otherwise the agent
runs without it, logs the reason once, and reports it in its status (``models``); its rules
keep running.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fleetlink.edge.anomaly.card import ModelCard, ModelUnavailableError, card_path, read_card
from fleetlink.edge.anomaly.detector import Detection, WindowDetector
from fleetlink.edge.anomaly.scorer import Scorer
from fleetlink.edge.anomaly.windows import RowClock
from fleetlink.firmware_profiles import ModelRef, Profile
from fleetlink.shared.event_types import ANOMALY
from fleetlink.shared.messages import Event
from fleetlink.shared.signals import by_name

log = logging.getLogger(__name__)

_TOP_SIGNALS = 3


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """A model ready to score: its card, its scorer and where it came from."""

    ref: ModelRef
    path: Path
    card: ModelCard
    scorer: Scorer


def load_model(ref: ModelRef, folder: Path, available: set[str] | None = None) -> LoadedModel:
    """Return the model ``ref`` names (its file relative to ``folder``), checked and loaded.

    ``available``: the signal names the vehicle provides (None: not known, not checked).

    Raises:
        ModelUnavailableError: the file or its card is missing or unreadable, the hash or the
            features do not match the profile, a feature is not available, or LiteRT cannot
            run the file.
    """
    path = (folder / ref.file).resolve()
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise ModelUnavailableError(
            f"model {ref.name}: cannot read {path} ({exc.strerror}); "
            "reinstall the profile or remove the [[models]] entry"
        ) from None
    if digest != ref.sha256:
        raise ModelUnavailableError(
            f"model {ref.name}: {path} has SHA-256 {digest[:12]}…, the profile pins "
            f"{ref.sha256[:12]}… (a corrupt or replaced file); reinstall the profile"
        )
    card = read_card(card_path(path))
    if card.model_sha256 != ref.sha256 or card.features != ref.features:
        raise ModelUnavailableError(
            f"model {ref.name}: the card {card_path(path)} belongs to another model "
            "(its hash or feature list differs from the profile's)"
        )
    if available is not None:
        missing = [f for f in ref.features if f not in available]
        if missing:
            raise ModelUnavailableError(
                f"model {ref.name}: the vehicle does not provide {', '.join(missing)}; "
                "add them to the profile's polls or CAN signals"
            )
    return LoadedModel(ref=ref, path=path, card=card, scorer=Scorer(path, card))


class _Running:
    """One model on the sample stream: a row clock feeding a window detector."""

    def __init__(self, model: LoadedModel, consecutive: int | None) -> None:
        card = model.card
        self.model = model
        self.ids = [by_name(name).id for name in card.features]
        self.clock = RowClock(
            self.ids,
            card.row_interval_ms,
            int(card.stale_after_s * 1000),
            int(card.quiet_after_s * 1000),
        )
        self.detector = WindowDetector(card, model.scorer, consecutive)

    def tick(self, now_ms: int) -> Detection | None:
        if not self.clock.due(now_ms):
            return None
        row = self.clock.take(now_ms)
        if row is None:
            self.detector.reset()
            return None
        missing = self.detector.missing
        detection = self.detector.push(row)
        if self.detector.missing != missing:
            name = self.model.ref.name
            if self.detector.missing:
                log.warning(
                    "model %s: windows missing %s are not scored (counted in "
                    "windows_skipped_missing)",
                    name,
                    ", ".join(self.detector.missing),
                )
            else:
                log.info("model %s: every feature present again; windows are scored", name)
        return detection


class AnomalyModels:
    """The models an agent runs: ``observe`` every sample, ``tick`` often; ``tick`` returns
    the ``anomaly`` events to send. ``status`` maps each model's name to ``"running"`` or to
    why it does not run."""

    def __init__(self) -> None:
        self._running: list[_Running] = []
        self.status: dict[str, str] = {}
        self.counters: Counter[str] = Counter()

    @classmethod
    def for_profile(
        cls,
        profile: Profile,
        folder: Path,
        available: set[str] | None = None,
        consecutive: int | None = None,
    ) -> AnomalyModels:
        """Return the models of ``profile`` (files relative to ``folder``) that can run;
        log once, and record in ``status``, why each other one cannot."""
        models = cls()
        for ref in profile.models:
            try:
                loaded = load_model(ref, folder, available)
            except ModelUnavailableError as exc:
                log.warning("%s; the agent runs without it", exc)
                models.status[ref.name] = f"off: {exc}"[:256]
                continue
            models._running.append(_Running(loaded, consecutive))
            models.status[ref.name] = "running"
            log.info(
                "model %s runs on %d features (threshold %.3g, %d windows in a row)",
                ref.name,
                len(ref.features),
                loaded.card.threshold,
                consecutive or loaded.card.consecutive,
            )
        return models

    def __bool__(self) -> bool:
        return bool(self._running)

    def observe(self, signal_id: int, time_ms: int, value: float) -> None:
        """Hold one sample's value for every model that reads the signal; return None."""
        for running in self._running:
            running.clock.observe(signal_id, time_ms, value)

    def tick(self, now_ms: int | None = None) -> list[Event]:
        """Take the rows due at ``now_ms`` (default: now); return an ``anomaly`` event for
        each model whose debounce completed."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        events = []
        for running in self._running:
            detection = running.tick(now)
            if detection is None:
                continue
            self.counters["anomalies"] += 1
            events.append(anomaly_event(running.model, detection, now))
            log.info(
                "model %s: anomaly (score %.3g > %.3g), most off: %s",
                running.model.ref.name,
                detection.score,
                detection.threshold,
                ", ".join(detection.top_features[:_TOP_SIGNALS]),
            )
        return events

    def detector_counters(self) -> dict[str, Counter[str]]:
        """Return each running model's window counters (scored, skipped, over threshold)."""
        return {r.model.ref.name: r.detector.counters for r in self._running}


def anomaly_event(model: LoadedModel, detection: Detection, time_ms: int) -> Event:
    """Return the ``anomaly`` event for ``detection``: ``data`` carries the model, ``score``,
    ``threshold``, the top ``signal`` and the top signals with their errors."""
    data: dict[str, str | int | float | bool | None] = {
        "model": model.ref.name,
        "score": round(detection.score, 4),
        "threshold": round(detection.threshold, 4),
        "signal": detection.top_features[0],
        "signals": ",".join(detection.top_features[:_TOP_SIGNALS]),
        "window_s": round(model.card.window_rows * model.card.row_interval_ms / 1000),
    }
    for rank, (name, error) in enumerate(
        zip(detection.top_features[:_TOP_SIGNALS], detection.feature_errors, strict=False),
        start=1,
    ):
        data[f"error_{rank}"] = round(error, 4)
        data[f"signal_{rank}"] = name
    return Event(id=uuid.uuid4(), time_ms=time_ms, type=ANOMALY, severity="warning", data=data)
