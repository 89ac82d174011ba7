"""The seed's inference graph (BentoML's own example) ported to BentoML 1.4, with the models of
inferd's ``stories`` graph: three generations of smollm2 in parallel (seeds 1, 2, 3), each scored
in turn by smollm2's fluency (exp of its mean token log-probability), JSON
``[{generated, score}]`` out. The work per request is inferd's: the same token-by-token loop with
the KV cache and the same sampling (python/inferd/workflows/textgen.py), the same score
(python/inferd/workflows/lmscore.py). As in the seed, the generators are services of their own
called at once with ``asyncio.gather``, and the generated texts are scored one after another.

``GRAPH_MODEL_DIR``: the model (service/models/smollm2, built by ``make models``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import bentoml
import torch

MODEL_DIR = os.environ.get("GRAPH_MODEL_DIR", "service/models/smollm2")


def _load() -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, local_files_only=True, dtype=torch.float32).eval()
    return tokenizer, model


def _next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    probabilities = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probabilities, order = torch.sort(probabilities, descending=True)
    cumulative = torch.cumsum(sorted_probabilities, dim=-1)
    sorted_probabilities[cumulative - sorted_probabilities > top_p] = 0.0
    probabilities = torch.zeros_like(probabilities).scatter(-1, order, sorted_probabilities)
    return int(torch.multinomial(probabilities, 1, generator=generator).item())


class _Generator:
    def __init__(self) -> None:
        self.tokenizer, self.model = _load()
        self.eos = set([self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id])

    def _generate(self, text: str, seed: int, max_new_tokens: int, temperature: float = 0.8, top_p: float = 0.95) -> str:
        messages = [{"role": "user", "content": text}]
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        generator = torch.Generator().manual_seed(seed)
        step, cache, generated = torch.tensor([ids]), None, []
        for _ in range(max_new_tokens):
            with torch.inference_mode():
                output = self.model(input_ids=step, past_key_values=cache, use_cache=True)
            cache = output.past_key_values
            token = _next_token(output.logits[0, -1], temperature, top_p, generator)
            if token in self.eos:
                break
            generated.append(token)
            step = torch.tensor([[token]])
        return str(self.tokenizer.decode(generated, skip_special_tokens=True))


@bentoml.service(workers=1)
class Generator1(_Generator):
    @bentoml.api
    def generate(self, text: str, max_new_tokens: int = 24) -> str:
        return self._generate(text, 1, max_new_tokens)


@bentoml.service(workers=1)
class Generator2(_Generator):
    @bentoml.api
    def generate(self, text: str, max_new_tokens: int = 24) -> str:
        return self._generate(text, 2, max_new_tokens)


@bentoml.service(workers=1)
class Generator3(_Generator):
    @bentoml.api
    def generate(self, text: str, max_new_tokens: int = 24) -> str:
        return self._generate(text, 3, max_new_tokens)


@bentoml.service(workers=1)
class Scorer:
    def __init__(self) -> None:
        self.tokenizer, self.model = _load()
        vocabulary = self.tokenizer.get_vocab()
        self.first = [vocabulary["<|endoftext|>"]]  # as the default service's smollm2-score

    @bentoml.api
    def score(self, text: str) -> float:
        ids = torch.tensor([self.first + self.tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            logprobs = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        return float(logprobs.gather(-1, ids[0, 1:, None]).mean().exp())


@bentoml.service(workers=1)
class InferenceGraph:
    generator1 = bentoml.depends(Generator1)
    generator2 = bentoml.depends(Generator2)
    generator3 = bentoml.depends(Generator3)
    scorer = bentoml.depends(Scorer)

    @bentoml.api
    async def generate(self, text: str, max_new_tokens: int = 24) -> list[dict[str, Any]]:
        texts = await asyncio.gather(
            self.generator1.to_async.generate(text=text, max_new_tokens=max_new_tokens),
            self.generator2.to_async.generate(text=text, max_new_tokens=max_new_tokens),
            self.generator3.to_async.generate(text=text, max_new_tokens=max_new_tokens),
        )
        results = []
        for generated in texts:  # in turn, as the seed does
            results.append({"generated": generated, "score": await self.scorer.to_async.score(text=generated)})
        return results
