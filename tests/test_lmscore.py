"""The lm-score workflow: the default service's smollm2-score (SmolLM2-135M's weights as a
fluency scorer), served by a real server and called through the Python client."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest
from conftest import RunningServer

from inferd import AsyncClient
from inferd.errors import InvalidInput

SENTENCES = [
    "The cat sat on the warm mat by the door.",
    "We walked to the market early in the morning.",
    "She opened the window and the room filled with light.",
    "Rain fell on the roof all night long.",
]


def shuffled(text: str, seed: int) -> str:
    words = text.rstrip(".").split()
    random.Random(seed).shuffle(words)
    return " ".join(words).lower() + "."


def test_fluent_text_scores_higher_than_its_words_shuffled(client: Any) -> None:
    for seed, sentence in enumerate(SENTENCES):
        fluent = client.infer("smollm2-score", sentence).output
        scrambled = client.infer("smollm2-score", shuffled(sentence, seed)).output
        assert 0 < scrambled["score"] < fluent["score"] <= 1, (sentence, fluent, scrambled)
        assert math.isclose(fluent["score"], math.exp(fluent["mean_logprob"]), rel_tol=1e-6)
        assert fluent["tokens"] >= len(sentence.split())


def test_a_list_is_scored_text_by_text(client: Any) -> None:
    together = client.infer("smollm2-score", SENTENCES[:3]).output
    alone = [client.infer("smollm2-score", {"text": text}).output for text in SENTENCES[:3]]
    assert len(together) == 3
    for a, b in zip(together, alone):
        assert a["tokens"] == b["tokens"] and math.isclose(a["mean_logprob"], b["mean_logprob"], abs_tol=1e-4)


def test_concurrent_requests_batch_and_score_as_alone(server: RunningServer, client: Any) -> None:
    texts = SENTENCES + [shuffled(text, 7) for text in SENTENCES]
    alone = {text: client.infer("smollm2-score", text).output["mean_logprob"] for text in texts}
    before = next(model for model in client.models() if model.name == "smollm2-score").batching
    assert before is not None

    async def together() -> list[Any]:
        async with AsyncClient(server.address, timeout=120) as aclient:
            return await asyncio.gather(*(aclient.infer("smollm2-score", text) for text in texts))

    results = asyncio.run(together())
    after = next(model for model in client.models() if model.name == "smollm2-score").batching
    assert after is not None and int(after["rows"]) - int(before["rows"]) == len(texts)
    assert int(after["batches"]) - int(before["batches"]) < len(texts)  # some ran in one batch
    for text, result in zip(texts, results):
        assert math.isclose(result.output["mean_logprob"], alone[text], abs_tol=1e-4), text


@pytest.mark.parametrize(("inputs", "message"), [
    ("", "the text is empty"),
    ("   ", "the text is empty"),
    (["fine", ""], "text 1: the text is empty"),
    ([], "an empty list"),
    ({"wrong": 1}, "expected text"),
])  # fmt: skip
def test_bad_input_is_invalid_argument_naming_it(client: Any, inputs: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        client.infer("smollm2-score", inputs)
