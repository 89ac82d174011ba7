"""What the causal language model workflows (textgen, lm-score) share: the dtypes they take, and
where and in what dtype a model goes."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["DTYPES", "check_dtype", "placement"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_dtype(kind: str, dtype: str) -> None:
    """``dtype`` is "auto" or one of :data:`DTYPES`, else a ConfigError naming the workflow."""
    if dtype != "auto" and dtype not in DTYPES:
        raise ConfigError(f"{kind}: dtype must be auto or one of {', '.join(DTYPES)}, not {dtype!r}")


def placement(kind: str, device: str, dtype: str, threads: int | None) -> tuple[torch.device, Any]:
    """(device, dtype) for a model: CUDA for "cuda" (a ConfigError without a GPU) or for "auto"
    where torch sees one; "auto" dtype is the checkpoint's on CUDA, float32 on the CPU. Sets
    torch's CPU threads when ``threads`` is given."""
    if threads:
        torch.set_num_threads(threads)
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{kind}: device = 'cuda' but torch sees no CUDA GPU")
    return torch.device("cuda" if use_cuda else "cpu"), DTYPES.get(dtype) or ("auto" if use_cuda else torch.float32)
