"""Alerts spoken with espeak-ng (or another program taking the text as its last argument).

Without the program on PATH the sink says so once in the log and stays silent. Each alert is
spoken by a child process, so the agent's loop never waits for the voice.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from fleetlink.edge.alerts.alert import Alert
from fleetlink.edge.alerts.sinks.base import AlertSink

log = logging.getLogger(__name__)


class SpeechSink(AlertSink):
    """Speaks each alert's message; with ``wav_dir`` writes ``<alert id>.wav`` files instead
    (``espeak-ng -w``), which is how its test hears it."""

    name = "speech"

    def __init__(self, command: str = "espeak-ng", wav_dir: Path | None = None) -> None:
        self.program = shutil.which(command)
        self.wav_dir = wav_dir
        self.children: list[subprocess.Popen[bytes]] = []
        if self.program is None:
            log.warning("speech alerts are off: %s is not on PATH (apt install espeak-ng)", command)

    def show(self, alert: Alert) -> None:
        if self.program is None:
            return
        self.children = [c for c in self.children if c.poll() is None]
        args = [self.program]
        if self.wav_dir is not None:
            args += ["-w", str(self.wav_dir / f"{alert.id}.wav")]
        self.children.append(
            subprocess.Popen(
                [*args, alert.message],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """Let the voices finish (up to ``timeout_s`` each)."""
        for child in self.children:
            try:
                child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
        self.children = []
