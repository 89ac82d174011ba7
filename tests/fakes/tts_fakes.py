"""A TTS workflow for tests: a sine tone per character, synthesised block by block."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from inferd.workflows.tts import TTSWorkflow


class SineTTS(TTSWorkflow):
    """Each character of the text becomes ``char_ms`` of a tone (8 kHz); ``frequency``
    (parameter) sets its pitch. Counts the blocks it makes, so tests can see it stop."""

    parameter_names = ("frequency",)
    blocks_made = 0
    lock = threading.Lock()
    #: Set when a synthesis ends, run to its end or closed by a caller that went.
    ended = threading.Event()

    def __init__(self, path: Any = None, *, char_ms: int = 100, **options: Any) -> None:
        super().__init__(path, **options)
        self.char_ms = char_ms

    def setup(self) -> None:
        self.sample_rate = 8000

    def synthesize(self, text: str, parameters: Mapping[str, Any]) -> Iterator[np.ndarray]:
        frequency = float(parameters.get("frequency", 440))
        count = self.sample_rate * self.char_ms // 1000
        try:
            for index, _ in enumerate(text):
                with SineTTS.lock:
                    SineTTS.blocks_made += 1
                t = (np.arange(count) + index * count) / self.sample_rate
                yield 0.5 * np.sin(2 * np.pi * frequency * t)
        finally:
            SineTTS.ended.set()
