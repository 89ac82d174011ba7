"""PyTorch models (``workflow = "torch"``).

Loads, by ``format`` (default: by the file):

- ``export``: a ``torch.export`` archive (``.pt2``, from ``torch.export.save``);
- ``torchscript``: a TorchScript archive (from ``torch.jit.save``);
- ``state_dict``: a state dict (``torch.save(model.state_dict())``) loaded into a named
  ``nn.Module`` class (``module = "package.module:Class"``, built with ``module_args``).

Pickles are always read with ``weights_only=True``: a model file cannot run code. Requests run
under ``torch.inference_mode()`` on ``device`` (default: ``cuda`` when available, else ``cpu``).
"""

from __future__ import annotations

import importlib
import logging
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ConfigError
from ..workflow import TensorSpec, Workflow, check_tensors, inline
from ._loading import MODEL_LOAD_LOCK

__all__ = ["TorchWorkflow"]

logger = logging.getLogger("inferd.workflows.torch")

Format = Literal["auto", "export", "torchscript", "state_dict"]


def _detect_format(path: Path) -> Format:
    if path.suffix == ".pt2":
        return "export"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        # TorchScript archives carry their code; plain torch.save zips only data.
        if any("/code/" in name for name in names):
            return "torchscript"
    return "state_dict"


def _import_module_class(reference: str) -> type[torch.nn.Module]:
    module_name, _, class_name = reference.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"module {reference!r}: expected 'package.module:Class'")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ConfigError(f"module {reference!r} is not a torch.nn.Module subclass")
    return cls


class TorchWorkflow(Workflow):
    """Runs a PyTorch model.

    Options: ``format``, ``module`` and ``module_args`` (state_dict only), ``device``,
    ``inputs`` (tables of ``name``, ``dtype``, ``shape`` with -1 for any size; default one
    float32 tensor named ``input``), ``outputs`` (names for the model's outputs, in order;
    default ``["output"]``), ``threads`` (torch intra-op threads; default torch's own),
    ``warmup`` (run once on zeros at setup when every input declares its shape; default true).
    """

    kind = "torch"

    def __init__(
        self,
        path: Path | None = None,
        *,
        format: Format = "auto",
        module: str | None = None,
        module_args: Mapping[str, Any] | None = None,
        device: str = "auto",
        inputs: Sequence[Mapping[str, Any]] | None = None,
        outputs: Sequence[str] = ("output",),
        threads: int | None = None,
        warmup: bool = True,
    ) -> None:
        if path is None:
            raise ValueError("the torch workflow needs a model file: set `path`")
        super().__init__(path)
        self.model_path = path
        self.format: Format = _detect_format(path) if format == "auto" else format
        if self.format == "state_dict" and module is None:
            raise ConfigError("a state_dict needs `module = \"package.module:Class\"` to load into")
        self.module_reference = module
        self.module_args = dict(module_args or {})
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.input_specs = [
            TensorSpec(
                name=str(table["name"]),
                dtype=np.dtype(table.get("dtype", "float32")),
                shape=tuple(None if size < 0 else int(size) for size in table["shape"])
                if "shape" in table
                else None,
            )
            for table in (inputs or [{"name": "input"}])
        ]
        self.output_names = list(outputs)
        self.threads = threads
        self.warmup = warmup
        self.model: Any = None

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return self.input_specs, [TensorSpec(name, None, None) for name in self.output_names]

    def setup(self) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        with MODEL_LOAD_LOCK:  # not while a transformers load in another thread patches torch
            if self.format == "export":
                self.model = torch.export.load(str(self.model_path)).module()
            elif self.format == "torchscript":
                # Deprecated by torch in favour of torch.export, and still what many users have. The
                # warning is a FutureWarning or a DeprecationWarning, depending on torch's version.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated")
                    self.model = torch.jit.load(  # type: ignore[no-untyped-call]
                        str(self.model_path), map_location=self.device
                    ).eval()
            else:
                assert self.module_reference is not None
                module = _import_module_class(self.module_reference)(**self.module_args)
                state = torch.load(self.model_path, map_location="cpu", weights_only=True)
                module.load_state_dict(state)
                self.model = module.eval()
            if self.format != "torchscript":
                self.model = self.model.to(self.device)
            logger.info("%s: %s on %s", self.model_path.name, self.format, self.device)
            if self.warmup and all(spec.shape is not None for spec in self.input_specs):
                # The first call pays for lazy initialisation: pay it here, not in a request (and
                # under the lock: loading may change torch's default dtype for a while).
                self.run(self.preprocess({spec.name: spec.zeros() for spec in self.input_specs}))

    @inline  # a few comparisons: cheaper on the loop than a hop to a thread
    def preprocess(self, inputs: Any) -> dict[str, np.ndarray]:
        # Numpy still: a batcher may join these with other requests' before `run`.
        return check_tensors(inputs, self.input_specs)

    def run(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # from_numpy shares memory; a read-only request buffer is copied once first.
        arguments = [
            torch.from_numpy(np.require(features[spec.name], requirements=("C", "W"))).to(self.device)
            for spec in self.input_specs
        ]
        with torch.inference_mode():
            result = self.model(*arguments)
        if isinstance(result, torch.Tensor):
            result = (result,)
        if isinstance(result, Mapping):
            return {str(name): value.detach().cpu().numpy() for name, value in result.items()}
        if len(result) != len(self.output_names):
            raise RuntimeError(
                f"the model returned {len(result)} outputs; `outputs` names {len(self.output_names)}"
            )
        return {name: value.detach().cpu().numpy() for name, value in zip(self.output_names, result)}

    def teardown(self) -> None:
        self.model = None
