"""Text to speech: a base class that streams audio, and Bark (``workflow = "bark"``).

:class:`TTSWorkflow` turns text into audio and does the rest: it checks the input, splits the
synthesiser's audio into chunks of ``chunk_ms``, and encodes them as 16-bit PCM or WAV with
the sample rate in every response (``parameters["sample_rate"]``, through
:class:`inferd.workflow.Audio`). A subclass sets ``sample_rate`` in ``setup`` and implements
``synthesize(text, parameters)``, a generator of float audio blocks (mono, -1..1).

Output formats (option ``format``):
- ``wav`` (default): ``Infer`` returns one complete WAV file. ``Stream`` sends a WAV header
  (with the "unknown length" sizes that streaming WAV uses) in the first chunk and raw
  samples after it, so the concatenated chunks are a playable file.
- ``pcm``: raw little-endian int16 samples, content type
  ``audio/pcm;rate=<sample rate>;channels=1;format=s16le``.

:class:`BarkWorkflow` runs Suno's Bark through transformers (``BarkModel``) from a local
directory. Get real weights once where there is internet, for example::

    python -c "from transformers import BarkModel, BarkProcessor as P; \\
        BarkModel.from_pretrained('suno/bark-small').save_pretrained('models/bark-small'); \\
        P.from_pretrained('suno/bark-small').save_pretrained('models/bark-small')"

and declare ``workflow = "bark"``, ``path = "models/bark-small"``. Bark makes a whole
utterance at once, so it streams sentence by sentence (a cancelled stream stops after the
sentence in progress). Options: ``voice_preset`` (a speaker in the processor's
``speaker_embeddings``, e.g. ``v2/en_speaker_6``), ``device`` (auto, cpu, cuda),
``max_semantic_tokens`` (caps each sentence's length), ``format``, ``chunk_ms``,
``max_chars``. Parameters: ``seed`` (sampling is reproducible with one), ``voice_preset``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import struct
import threading
import time
import wave
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ..errors import ConfigError, InvalidInput
from ..workflow import Audio, Workflow
from ._loading import MODEL_LOAD_LOCK
from ._params import check_known, text_input

__all__ = ["TTSWorkflow", "BarkWorkflow", "wav_header", "to_pcm16"]

logger = logging.getLogger("inferd.workflows.tts")

AudioFormat = Literal["wav", "pcm"]

_UNKNOWN = 0xFFFFFFFF  # the size fields of a WAV whose length is not known yet (streaming)

_SENTENCES = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+|\n|$)")


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples (-1..1; clipped) as little-endian 16-bit PCM."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte WAV header for mono 16-bit PCM; ``None`` bytes: a stream of unknown length."""
    riff = _UNKNOWN if data_bytes is None else 36 + data_bytes
    data = _UNKNOWN if data_bytes is None else data_bytes
    return (
        b"RIFF" + struct.pack("<I", riff) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", data)
    )  # fmt: skip


class TTSWorkflow(Workflow):
    """Base of the text-to-speech workflows: text in, audio chunks out."""

    #: Request parameters the subclass accepts (passed to ``synthesize``).
    parameter_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        path: Path | None = None,
        *,
        format: AudioFormat = "wav",
        chunk_ms: int = 500,
        max_chars: int = 2_000,
    ) -> None:
        super().__init__(path)
        if format not in ("wav", "pcm"):
            raise ConfigError(f"{type(self).__name__}: format must be wav or pcm, not {format!r}")
        if not 10 <= chunk_ms <= 60_000:
            raise ConfigError(f"{type(self).__name__}: chunk_ms must be from 10 to 60000")
        self.format: AudioFormat = format
        self.chunk_ms = chunk_ms
        self.max_chars = max_chars
        #: Set by the subclass's ``setup``.
        self.sample_rate = 0

    def synthesize(self, text: str, parameters: Mapping[str, Any]) -> Iterator[np.ndarray]:
        """Yields float audio blocks (mono, -1..1, at ``sample_rate``) for ``text``."""
        raise NotImplementedError

    @property
    def content_type(self) -> str:
        if self.format == "wav":
            return "audio/wav"
        return f"audio/pcm;rate={self.sample_rate};channels=1;format=s16le"

    def preprocess(self, inputs: Any, parameters: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        parameters = dict(parameters or {})
        check_known(parameters, self.parameter_names)
        text = text_input(inputs, self.max_chars).strip()
        if not text:
            raise InvalidInput("the text is empty")
        return text, parameters

    def _pcm_chunks(self, text: str, parameters: Mapping[str, Any]) -> Iterator[bytes]:
        """The synthesised audio as PCM chunks of ``chunk_ms`` (the last may be shorter)."""
        size = max(1, self.sample_rate * self.chunk_ms // 1000) * 2
        pending = b""
        for block in self.synthesize(text, parameters):
            pending += to_pcm16(block)
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
        if pending:
            yield pending

    def run(self, features: tuple[str, dict[str, Any]]) -> Audio:
        pcm = b"".join(self._pcm_chunks(*features))
        data = wav_header(self.sample_rate, len(pcm)) + pcm if self.format == "wav" else pcm
        return Audio(data, self.sample_rate, self.content_type)

    def stream(self, features: tuple[str, dict[str, Any]]) -> Iterator[Audio]:
        first = self.format == "wav"
        for chunk in self._pcm_chunks(*features):
            if first:
                chunk, first = wav_header(self.sample_rate) + chunk, False
            yield Audio(chunk, self.sample_rate, self.content_type)


def split_sentences(text: str) -> list[str]:
    """``text`` in sentences (at ., !, ?, and line ends), each stripped, none empty."""
    return [sentence.strip() for sentence in _SENTENCES.findall(text) if sentence.strip()]


class BarkWorkflow(TTSWorkflow):
    """Suno's Bark (transformers ``BarkModel``) from a local directory, sentence by sentence."""

    kind = "bark"
    parameter_names = ("seed", "voice_preset")

    def __init__(
        self,
        path: Path | None = None,
        *,
        voice_preset: str | None = None,
        device: str = "auto",
        max_semantic_tokens: int | None = None,
        format: AudioFormat = "wav",
        chunk_ms: int = 500,
        max_chars: int = 2_000,
    ) -> None:
        if path is None:
            raise ConfigError("the bark workflow needs a model directory: set `path`")
        super().__init__(path, format=format, chunk_ms=chunk_ms, max_chars=max_chars)
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"bark: device must be auto, cpu or cuda, not {device!r}")
        self.model_dir = path
        self.voice_preset = voice_preset
        self.device_option = device
        self.max_semantic_tokens = max_semantic_tokens
        self.model: Any = None
        self.processor: Any = None
        # Bark samples with torch's global generator: a seeded request holds it alone.
        self._rng_lock = threading.Lock()

    def setup(self) -> None:
        import torch
        from transformers import BarkModel, BarkProcessor

        started = time.perf_counter()
        if not (self.model_dir / "config.json").exists():
            raise ConfigError(f"bark: no model at {self.model_dir} (see the module's docstring for real weights)")
        use_cuda = self.device_option == "cuda" or (self.device_option == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if use_cuda else "cpu")
        logger.info("bark: loading the processor and the model from %s", self.model_dir)
        speakers = "speaker_embeddings_path.json" if (self.model_dir / "speaker_embeddings_path.json").exists() else None
        with MODEL_LOAD_LOCK:
            self.processor = BarkProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                self.model_dir, speaker_embeddings_dict_path=speakers, local_files_only=True
            )
            model: Any = BarkModel.from_pretrained(self.model_dir, local_files_only=True)
            self.model = model.to(self.device).eval()
        self.sample_rate = int(self.model.generation_config.sample_rate)
        logger.info(
            "bark: ready on %s, %d Hz, in %.1f s", self.device, self.sample_rate, time.perf_counter() - started
        )

    def ready(self) -> bool:
        return self.model is not None

    def teardown(self) -> None:
        self.model = None
        self.processor = None

    def preprocess(self, inputs: Any, parameters: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        text, checked = super().preprocess(inputs, parameters)
        seed = checked.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            raise InvalidInput(f"parameter 'seed': expected a whole number >= 0, got {seed!r}", parameter="seed")
        voice = checked.get("voice_preset")
        if voice is not None and not isinstance(voice, str):
            raise InvalidInput("parameter 'voice_preset': expected a string", parameter="voice_preset")
        return text, checked

    def synthesize(self, text: str, parameters: Mapping[str, Any]) -> Iterator[np.ndarray]:
        import torch

        voice = parameters.get("voice_preset", self.voice_preset)
        seed = parameters.get("seed")
        extra: dict[str, Any] = {}
        if self.max_semantic_tokens is not None:
            extra["semantic_max_new_tokens"] = self.max_semantic_tokens
        for index, sentence in enumerate(split_sentences(text)):
            try:
                inputs = self.processor(sentence, voice_preset=voice, return_tensors="pt")
            except ValueError as error:
                raise InvalidInput(f"voice preset {voice!r}: {error}", parameter="voice_preset") from None
            inputs = {name: value.to(self.device) if hasattr(value, "to") else value for name, value in inputs.items()}
            with self._rng_lock if seed is not None else contextlib.nullcontext():
                if seed is not None:
                    torch.manual_seed(seed + index)
                with torch.inference_mode():
                    audio = self.model.generate(**inputs, do_sample=True, **extra)
            yield audio[0].float().cpu().numpy()


def read_wav(data: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, int16 samples) of a mono 16-bit WAV (a complete one)."""
    with wave.open(io.BytesIO(data)) as file:
        return file.getframerate(), np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
