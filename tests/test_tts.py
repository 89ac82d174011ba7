"""Text to speech: the TTS base class (through a sine-tone synthesiser) and Bark (a tiny random
Bark built offline), served by a real inferd gRPC server on 127.0.0.1."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub (the models are local)

import io
import struct
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import transformers
from conftest import RunningServer
from fakes.tiny_models import tiny_bark
from fakes.tts_fakes import SineTTS

from inferd.client import Client, StreamChunk
from inferd.config import ModelConfig, ServiceConfig
from inferd.errors import InvalidInput
from inferd.workflow import Blob

# The model code is imported at collection, not later inside a fixture.
_MODEL_CLASS = transformers.BarkModel

SINE = "fakes.tts_fakes:SineTTS"
BARK = "inferd.workflows.tts:BarkWorkflow"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    bark = str(tiny_bark(tmp_path_factory.mktemp("tiny-bark")))
    tables: dict[str, dict[str, Any]] = {
        "tone": {"workflow": SINE, "options": {"chunk_ms": 200}},
        "tone-pcm": {"workflow": SINE, "options": {"format": "pcm", "chunk_ms": 200}},
        "bark": {"workflow": BARK, "path": bark, "options": {"max_semantic_tokens": 8}},
        "bark-pcm": {"workflow": BARK, "path": bark, "options": {"max_semantic_tokens": 8, "format": "pcm", "chunk_ms": 50}},
    }
    config = ServiceConfig(models={name: ModelConfig.model_validate(table) for name, table in tables.items()})
    running = RunningServer(config)
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with server.client(timeout=100) as client:
        yield client


def _wav(data: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(data)) as file:
        assert file.getnchannels() == 1 and file.getsampwidth() == 2
        return file.getframerate(), np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")


def _chunks(client: Client, model: str, text: str, **parameters: Any) -> list[StreamChunk]:
    chunks = list(client.stream(model, text, parameters=parameters))
    assert chunks[-1].final
    return chunks[:-1]


def test_infer_returns_a_wav_with_its_sample_rate(client: Client) -> None:
    result = client.infer("tone", "abc", parameters={"frequency": 1000})
    assert isinstance(result.output, Blob) and result.output.content_type == "audio/wav"
    assert result.parameters["sample_rate"] == 8000
    rate, samples = _wav(result.output.data)
    assert rate == 8000 and len(samples) == 3 * 800
    expected = (np.clip(0.5 * np.sin(2 * np.pi * 1000 * np.arange(2400) / 8000), -1, 1) * 32767).round()
    assert np.array_equal(samples, expected.astype(np.int16))


def test_stream_sends_a_playable_wav_in_chunks(client: Client) -> None:
    whole = _wav(client.infer("tone", "abcde").output.data)[1]
    chunks = _chunks(client, "tone", "abcde")
    assert len(chunks) == 3  # 500 ms of audio in chunks of 200 ms
    assert all(chunk.parameters["sample_rate"] == 8000 for chunk in chunks)
    assert all(chunk.output.content_type == "audio/wav" for chunk in chunks)
    data = b"".join(chunk.output.data for chunk in chunks)
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF  # streaming: length unknown
    assert len(chunks[0].output.data) == 44 + 3200 and len(chunks[1].output.data) == 3200
    assert np.array_equal(np.frombuffer(data[44:], dtype="<i2"), whole)


def test_pcm_format(client: Client) -> None:
    result = client.infer("tone-pcm", "ab")
    assert result.output.content_type == "audio/pcm;rate=8000;channels=1;format=s16le"
    assert len(result.output.data) == 2 * 800 * 2
    chunks = _chunks(client, "tone-pcm", "ab")
    assert b"".join(chunk.output.data for chunk in chunks) == result.output.data


def test_bad_requests(client: Client) -> None:
    with pytest.raises(InvalidInput, match="volume"):
        client.infer("tone", "abc", parameters={"volume": 3})
    with pytest.raises(InvalidInput, match="empty"):
        client.infer("tone", "   ")
    with pytest.raises(InvalidInput, match="limit"):
        client.infer("tone", "x" * 5000)
    with pytest.raises(InvalidInput, match="seed"):
        client.infer("bark", "hi", parameters={"seed": "x"})


def test_cancelling_a_stream_stops_synthesis(client: Client) -> None:
    before = SineTTS.blocks_made
    SineTTS.ended.clear()
    stream = client.stream("tone", "x" * 1500)
    next(stream)
    next(stream)
    stream.close()
    assert SineTTS.ended.wait(30), "the model's generator was not closed"
    assert SineTTS.blocks_made - before < 1500  # closed long before the end of its text


def test_bark_speaks_sentence_by_sentence(client: Client) -> None:
    """A tiny random Bark: noise, but made by the real BarkModel pipeline at 24 kHz."""
    text = "Hello there. How are you?"
    result = client.infer("bark", text, parameters={"seed": 3})
    assert result.parameters["sample_rate"] == 24000
    rate, samples = _wav(result.output.data)
    assert rate == 24000 and len(samples) > 0
    pcm = client.infer("bark-pcm", text, parameters={"seed": 3}).output.data
    assert np.array_equal(np.frombuffer(pcm, dtype="<i2"), samples)  # seeded: reproducible
    chunks = _chunks(client, "bark-pcm", text, seed=3)
    assert len(chunks) >= 2 and all(chunk.parameters["sample_rate"] == 24000 for chunk in chunks)
    assert b"".join(chunk.output.data for chunk in chunks) == pcm
