"""How fluent a text is to a causal language model (``workflow = "lm-score"``).

The score is ``exp(mean log p(token | the tokens before it))`` over the text's tokens: the
geometric mean of the probabilities the model gives them, in (0, 1]; higher is more fluent (a
perplexity's inverse). A first token is put before the text (``first_token``: by default the
tokenizer's BOS), so that every token of the text is scored; with none (``first_token = ""``,
or no BOS) the text's first token is not (nothing predicts it).

``path`` is a model directory (``save_pretrained`` layout), read from local files only: the
default service scores with the weights of its chat model, SmolLM2-135M.

Input: text, JSON ``{"text": ...}``, or a list of texts. Output: ``{"score", "mean_logprob",
"tokens"}`` for a text, a list of them for a list. With ``batching`` on, concurrent requests run
as one padded forward pass: each text's tokens are padded (on the right, masked) to a multiple
of ``pad_to`` tokens, so that texts of similar length share a batch; padding never changes a
score (the model is causal and the padding comes after the text).

Options: ``first_token`` (a token's text; the default service gives SmolLM2's
``<|endoftext|>``, as its BOS is the chat token ``<|im_start|>``), ``device`` (auto, cpu, cuda), ``dtype`` (auto, float32, bfloat16, float16; float32 on
CPU), ``threads`` (torch CPU threads), ``max_chars`` (100,000), ``max_tokens`` (2048; longer
texts are refused), ``pad_to`` (32).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import ConfigError, InvalidInput
from ..workflow import Workflow
from ._lm import check_dtype, placement
from ._loading import MODEL_LOAD_LOCK
from ._params import text_input

__all__ = ["LMScoreWorkflow"]

logger = logging.getLogger("inferd.workflows.lmscore")



class LMScoreWorkflow(Workflow):
    """Scores texts by a causal language model's mean token log-probability."""

    kind = "lm-score"

    def __init__(
        self,
        path: Path | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = None,
        max_chars: int = 100_000,
        max_tokens: int = 2048,
        pad_to: int = 32,
        first_token: str | None = None,
    ) -> None:
        if path is None:
            raise ConfigError("the lm-score workflow needs a model: set `path` (a save_pretrained directory)")
        super().__init__(path)
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"lm-score: device must be auto, cpu or cuda, not {device!r}")
        check_dtype("lm-score", dtype)
        if pad_to < 1 or max_tokens < 2:
            raise ConfigError("lm-score: pad_to must be at least 1 and max_tokens at least 2")
        self.device_option, self.dtype_option, self.threads = device, dtype, threads
        self.max_chars, self.max_tokens, self.pad_to = max_chars, max_tokens, pad_to
        self.first_token = first_token
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = torch.device("cpu")
        self.pad_id = 0
        self.bos: list[int] = []

    def setup(self) -> None:
        assert self.path is not None
        if not (self.path / "config.json").exists():
            raise ConfigError(f"lm-score: no model at {self.path}")
        self.device, dtype = placement("lm-score", self.device_option, self.dtype_option, self.threads)
        with MODEL_LOAD_LOCK:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)  # type: ignore[no-untyped-call]
            model: Any = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True, dtype=dtype)
            self.model = model.to(self.device).eval()
        tokenizer = self.tokenizer
        if self.first_token is None:
            self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        elif self.first_token == "":
            self.bos = []
        else:
            vocabulary = tokenizer.get_vocab()
            if self.first_token not in vocabulary:
                raise ConfigError(f"lm-score: first_token {self.first_token!r} is not a token of the tokenizer")
            self.bos = [int(vocabulary[self.first_token])]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0
        logger.info("lm-score: %s ready on %s (first token %s)", self.path, self.device, self.bos or "none")

    def ready(self) -> bool:
        return self.model is not None

    def teardown(self) -> None:
        self.model = self.tokenizer = None

    def _ids(self, text: str, index: int | None) -> list[int]:
        where = "" if index is None else f"text {index}: "
        if not text.strip():
            raise InvalidInput(f"{where}the text is empty: there is nothing to score")
        ids = self.bos + list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) < 2:
            raise InvalidInput(f"{where}one token, and no BOS token before it: nothing to score")
        if len(ids) > self.max_tokens:
            raise InvalidInput(f"{where}{len(ids)} tokens; the limit is {self.max_tokens}")
        return ids

    def preprocess(self, inputs: Any) -> dict[str, np.ndarray]:
        """Token ids and their mask, ``[texts, length]``, the length padded to ``pad_to``."""
        if isinstance(inputs, list):
            if not inputs:
                raise InvalidInput("an empty list: nothing to score")
            rows = [self._ids(text_input(text, self.max_chars), index) for index, text in enumerate(inputs)]
        else:
            rows = [self._ids(text_input(inputs, self.max_chars), None)]
        length = -(-max(map(len, rows)) // self.pad_to) * self.pad_to
        ids = np.full((len(rows), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        for row, tokens in enumerate(rows):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        return {"ids": ids, "mask": mask}

    def run(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each row's mean log-probability of its tokens (after the first) given those before."""
        ids = torch.from_numpy(features["ids"]).to(self.device)
        mask = torch.from_numpy(features["mask"]).to(self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            scored = mask[:, 1:].float()
            counts = scored.sum(dim=1)
            mean = (logprobs * scored).sum(dim=1) / counts
        mean_np = mean.cpu().numpy()
        return {"mean_logprob": mean_np, "score": np.exp(mean_np), "tokens": counts.cpu().numpy().astype(np.int64)}

    def postprocess(self, inputs: Any, outputs: dict[str, np.ndarray]) -> Any:
        scores = [
            {"score": float(score), "mean_logprob": float(mean), "tokens": int(tokens)}
            for score, mean, tokens in zip(outputs["score"], outputs["mean_logprob"], outputs["tokens"])
        ]
        return scores if isinstance(inputs, list) else scores[0]
