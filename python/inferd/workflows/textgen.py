"""Text generation with any Hugging Face causal language model (``workflow = "textgen"``).

``path`` is a model directory (``save_pretrained`` layout: config.json, weights, tokenizer) or
a GGUF file (dequantised by transformers when it loads; slow for big files, so the default
service converts its GGUF once at build time, see service/build_textgen.py). Nothing is ever
downloaded: loading uses local files only.

``Stream`` yields decoded text pieces as tokens are generated. Decoding is a token-by-token
loop with the KV cache, one token per generator step; the engine runs each step in a thread
and closes the generator when the client cancels, so generation stops within one token.
``Infer`` returns the whole text; if its caller cancels or its deadline passes, generation
stops within one token too (the loop polls ``request_cancelled()``).

Input: text (one user message when the tokenizer has a chat template; else the prompt), or
JSON ``{"messages": [{"role", "content"}, ...]}`` (needs a chat template) or ``{"text": ...}``.
Parameters: ``max_new_tokens``, ``temperature`` (0 or absent: greedy), ``top_p``, ``seed``,
``stop`` (strings that end the answer; not included).

Options: ``gguf_file`` (a GGUF file inside ``path``), ``chat_template`` (true/false; default:
use the tokenizer's when it has one), ``system`` (system prompt), ``device`` (auto, cpu,
cuda), ``dtype`` (auto, float32, bfloat16, float16; default float32 on CPU, the checkpoint's
on GPU), ``threads`` (torch CPU threads), ``attn_implementation`` (auto: transformers'
choice; or sdpa, eager, flash_attention_2), ``default_max_new_tokens`` (256),
``max_new_tokens_limit`` (4096), ``max_chars`` (prompt limit), ``stop_at_eos`` (default true).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import ConfigError, InvalidInput
from ..workflow import Workflow, request_cancelled
from ._lm import check_dtype, placement
from ._loading import MODEL_LOAD_LOCK
from ._params import GenerationParameters, chat_messages, generation_parameters, text_input

__all__ = ["TextGenWorkflow", "Prompt"]

logger = logging.getLogger("inferd.workflows.textgen")



@dataclass(frozen=True, slots=True)
class Prompt:
    """One request, ready to generate: the prompt's token ids and the checked parameters."""

    ids: list[int]
    parameters: GenerationParameters


def _held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of ``text`` could begin a stop string (not sent yet)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class TextGenWorkflow(Workflow):
    """A causal language model from a local directory or GGUF file, streaming its tokens."""

    kind = "textgen"

    def __init__(
        self,
        path: Path | None = None,
        *,
        gguf_file: str | None = None,
        chat_template: bool | None = None,
        system: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = None,
        attn_implementation: str = "auto",
        default_max_new_tokens: int = 256,
        max_new_tokens_limit: int = 4096,
        max_chars: int = 100_000,
        stop_at_eos: bool = True,
    ) -> None:
        if path is None:
            raise ConfigError("the textgen workflow needs a model: set `path` (a directory or a .gguf file)")
        super().__init__(path)
        if path.suffix == ".gguf" and gguf_file is None:
            path, gguf_file = path.parent, path.name
        self.model_dir = path
        self.gguf_file = gguf_file
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"textgen: device must be auto, cpu or cuda, not {device!r}")
        check_dtype("textgen", dtype)
        if not 1 <= default_max_new_tokens <= max_new_tokens_limit:
            raise ConfigError("textgen: default_max_new_tokens must be from 1 to max_new_tokens_limit")
        self.use_chat_template = chat_template
        self.system = system
        self.device_option = device
        self.dtype_option = dtype
        self.threads = threads
        self.attn_implementation = attn_implementation
        self.default_max_new_tokens = default_max_new_tokens
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_chars = max_chars
        self.stop_at_eos = stop_at_eos
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = torch.device("cpu")
        self.eos_ids: set[int] = set()
        self._last_logits: dict[str, int] = {}
        self._lock = threading.Lock()
        #: Counters (read by tests and metrics): tokens generated in all, streams open now, and
        #: tokens generated after a stream's generator was closed (always 0 here: generation
        #: happens only inside a generator step).
        self.tokens_generated = 0
        self.streams_open = 0
        self.tokens_after_close = 0

    def setup(self) -> None:
        started = time.perf_counter()
        where = str(self.model_dir / self.gguf_file) if self.gguf_file else str(self.model_dir)
        if not (self.model_dir / (self.gguf_file or "config.json")).exists():
            raise ConfigError(f"textgen: no model at {where}")
        self.device, dtype = placement("textgen", self.device_option, self.dtype_option, self.threads)
        extra: dict[str, Any] = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        with MODEL_LOAD_LOCK:
            logger.info("textgen: loading the tokenizer from %s", where)
            self.tokenizer = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
                self.model_dir, local_files_only=True, **extra
            )
            logger.info(
                "textgen: loading the weights%s (%.1f s so far)",
                " (dequantising GGUF tensors)" if self.gguf_file else "",
                time.perf_counter() - started,
            )
            if self.attn_implementation != "auto":
                extra["attn_implementation"] = self.attn_implementation
            model: Any = AutoModelForCausalLM.from_pretrained(self.model_dir, local_files_only=True, dtype=dtype, **extra)
            self.model = model.to(self.device).eval()
        # The prompt's step needs the logits of its last position only (as transformers' generate
        # asks for): the LM head over every prompt position was ~15% of the first token's time.
        forward = inspect.signature(self.model.forward).parameters
        self._last_logits = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        if self.use_chat_template and not self.tokenizer.chat_template:
            raise ConfigError(f"textgen: chat_template = true, but the tokenizer at {where} has none")
        parameters = sum(parameter.numel() for parameter in self.model.parameters())
        logger.info(
            "textgen: %s ready: %.1fM parameters, %s on %s, chat template %s, in %.1f s",
            where, parameters / 1e6, self.model.dtype, self.device,
            "on" if self._chat else "off", time.perf_counter() - started,
        )

    @property
    def _chat(self) -> bool:
        if self.tokenizer is None:
            return False
        has_template = bool(self.tokenizer.chat_template)
        return has_template if self.use_chat_template is None else self.use_chat_template and has_template

    def ready(self) -> bool:
        return self.model is not None

    def teardown(self) -> None:
        self.model = None
        self.tokenizer = None

    def preprocess(self, inputs: Any, parameters: Mapping[str, Any] | None = None) -> Prompt:
        checked = generation_parameters(
            parameters or {},
            default_max_new_tokens=self.default_max_new_tokens,
            max_new_tokens_limit=self.max_new_tokens_limit,
        )
        if self._chat:
            messages = chat_messages(inputs, self.max_chars, self.system)
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            if isinstance(inputs, Mapping) and "messages" in inputs:
                raise InvalidInput("this model has no chat template: send text, not messages")
            ids = self.tokenizer(text_input(inputs, self.max_chars))["input_ids"]
        if not ids:
            raise InvalidInput("the prompt is empty")
        return Prompt(list(ids), checked)

    def run(self, features: Prompt) -> str:
        return "".join(self._generate(features))

    def stream(self, features: Prompt) -> Iterator[str]:
        yield from self._generate(features)

    def _next_token(self, logits: torch.Tensor, parameters: GenerationParameters, generator: torch.Generator | None) -> int:
        if parameters.greedy:
            return int(torch.argmax(logits).item())
        assert parameters.temperature is not None
        probabilities = torch.softmax(logits.float() / parameters.temperature, dim=-1)
        if parameters.top_p is not None and parameters.top_p < 1.0:
            sorted_probabilities, order = torch.sort(probabilities, descending=True)
            cumulative = torch.cumsum(sorted_probabilities, dim=-1)
            drop = cumulative - sorted_probabilities > parameters.top_p  # always keeps the first
            sorted_probabilities[drop] = 0.0
            probabilities = torch.zeros_like(probabilities).scatter(-1, order, sorted_probabilities)
        return int(torch.multinomial(probabilities, 1, generator=generator).item())

    def _generate(self, prompt: Prompt) -> Iterator[str]:
        """Generates one token per step and yields the text it adds (when there is any)."""
        model, tokenizer, parameters = self.model, self.tokenizer, prompt.parameters
        generator: torch.Generator | None = None
        if not parameters.greedy:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(parameters.seed if parameters.seed is not None else int(time.time_ns() % 2**63))
        with self._lock:
            self.streams_open += 1
        generated: list[int] = []
        sent = 0
        cache: Any = None
        step_input = torch.tensor([prompt.ids], device=self.device)
        closed = False
        try:
            for _ in range(parameters.max_new_tokens):
                if request_cancelled():  # Infer's caller went: stop within one token
                    return
                with torch.inference_mode():
                    output = model(input_ids=step_input, past_key_values=cache, use_cache=True, **self._last_logits)
                cache = output.past_key_values
                token = self._next_token(output.logits[0, -1], parameters, generator)
                with self._lock:
                    self.tokens_generated += 1
                    if closed:
                        self.tokens_after_close += 1
                if self.stop_at_eos and token in self.eos_ids:
                    break
                generated.append(token)
                step_input = torch.tensor([[token]], device=self.device)
                text = tokenizer.decode(generated, skip_special_tokens=True)
                if text.endswith("\ufffd"):
                    continue  # part of a multi-byte character: wait for the rest
                if parameters.stop:
                    ends = [text.find(stop, max(sent - len(stop), 0)) for stop in parameters.stop]
                    found = [end for end in ends if end >= 0]
                    if found:
                        if min(found) > sent:
                            yield text[sent : min(found)]
                        return
                    ready = len(text) - _held_back(text, parameters.stop)
                else:
                    ready = len(text)
                if ready > sent:
                    piece, sent = text[sent:ready], ready
                    try:
                        yield piece
                    except GeneratorExit:
                        closed = True
                        raise
            if generated:
                text = tokenizer.decode(generated, skip_special_tokens=True)
                if len(text) > sent:
                    yield text[sent:]
        finally:
            with self._lock:
                self.streams_open -= 1
