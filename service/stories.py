"""The default service's ``stories`` graph written in Python (``workflow = "stories:Stories"``).

The same as the TOML graph in inferd.toml: three generations by smollm2 in parallel (seeds 1,
2, 3), each scored by smollm2-score, JSON ``[{generated, score}]`` out. The models are called
through handles (``self.models``), so each call keeps its model's limits, batching and timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from inferd import Workflow

SAMPLING = {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 32}


class Stories(Workflow):
    async def run(self, text: Any, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        generate, score = self.models["smollm2"], self.models["smollm2-score"]
        sampling = {**SAMPLING, **{key: parameters[key] for key in ("max_new_tokens",) if key in parameters}}
        texts = await asyncio.gather(*(generate.infer(text, {**sampling, "seed": seed}) for seed in (1, 2, 3)))
        scores = await asyncio.gather(*(score.infer(generated) for generated in texts))
        return [{"generated": generated, "score": result["score"]} for generated, result in zip(texts, scores)]
