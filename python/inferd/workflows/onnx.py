"""ONNX Runtime models (``workflow = "onnx"``).

Uses CUDA when a GPU is present and ONNX Runtime was built with it (``onnxruntime-gpu``);
otherwise CPU, quietly. Request tensors are checked against the model's input names, dtypes
and shapes before they reach ONNX Runtime, so a bad request gets a message naming the tensor.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..workflow import TensorSpec, Workflow, check_tensors, inline
from ._cuda import cuda_device_count

__all__ = ["OnnxWorkflow"]

logger = logging.getLogger("inferd.workflows.onnx")

_ONNX_TYPES: dict[str, np.dtype[Any]] = {
    f"tensor({name})": np.dtype(dtype)
    for name, dtype in [
        ("float", "float32"), ("double", "float64"), ("float16", "float16"),
        ("int8", "int8"), ("int16", "int16"), ("int32", "int32"), ("int64", "int64"),
        ("uint8", "uint8"), ("uint16", "uint16"), ("uint32", "uint32"), ("uint64", "uint64"),
        ("bool", "bool"),
    ]
}  # fmt: skip

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def choose_providers(requested: Sequence[str] | None) -> list[str]:
    """The execution providers to use: the requested ones that can run here, else CUDA when a
    GPU is present, always ending with CPU so that a session can be created."""
    available = ort.get_available_providers()
    has_gpu = cuda_device_count() > 0
    wanted = list(requested) if requested else ["CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = []
    for provider in wanted:
        if provider not in available:
            if requested:
                logger.warning("ONNX Runtime provider %s is not available here; skipping it", provider)
            continue
        if provider in _GPU_PROVIDERS and not has_gpu:
            if requested:
                logger.warning("no CUDA GPU found: not using %s", provider)
            continue
        chosen.append(provider)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


@functools.cache
def _preload_cuda_libraries() -> None:
    """Loads the CUDA and cuDNN libraries that pip's ``nvidia-*`` packages (or torch) installed,
    so that the CUDA provider finds them without LD_LIBRARY_PATH. Once per process."""
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is None:
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()) as said:
            preload()
    except Exception as error:  # noqa: BLE001 - loading is best effort; the session says the rest
        logger.debug("onnxruntime.preload_dlls failed: %s", error)
        return
    if said.getvalue().strip():
        logger.debug("onnxruntime.preload_dlls: %s", said.getvalue().strip())


def _spec(node: Any, strings: bool = False) -> TensorSpec:
    """An ONNX Runtime input or output (NodeArg) as a TensorSpec; symbolic sizes are any size.
    ``strings``: a string tensor is given as object dtype (outputs: what ``run`` returns),
    else left as any dtype (inputs: checked by ONNX Runtime itself)."""
    dtype = _ONNX_TYPES.get(node.type)
    if strings and node.type == "tensor(string)":
        dtype = np.dtype(object)
    # ONNX Runtime gives [] for a tensor of undeclared rank (and for sequences and maps): any
    # shape. (A true scalar says [] too; ONNX Runtime still checks what it is given.)
    shape = tuple(size if isinstance(size, int) and size >= 0 else None for size in node.shape or ())
    return TensorSpec(name=node.name, dtype=dtype, shape=shape or None)


class OnnxWorkflow(Workflow):
    """Runs an ONNX model with ONNX Runtime.

    Options: ``providers`` (execution providers in order of preference; default CUDA when
    present, then CPU), ``intra_op_threads``, ``inter_op_threads``, ``warmup`` (run once with
    zeros at setup; default true).
    """

    kind = "onnx"

    def __init__(
        self,
        path: Path | None = None,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        warmup: bool = True,
    ) -> None:
        if path is None:
            raise ValueError("the onnx workflow needs a model file: set `path`")
        super().__init__(path)
        self.model_path = path
        self.requested_providers = list(providers) if providers else None
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.warmup = warmup
        self.session: ort.InferenceSession | None = None
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.output_names: list[str] = []

    def setup(self) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no provider chatter in the server log
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        providers = choose_providers(self.requested_providers)
        if any(provider in _GPU_PROVIDERS for provider in providers):
            _preload_cuda_libraries()
        self.session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        self.providers = self.session.get_providers()
        missing = [provider for provider in providers if provider not in self.providers]
        if missing:
            logger.warning(
                "%s: %s could not start (its CUDA libraries did not load); running on %s",
                self.model_path.name, ", ".join(missing), ", ".join(self.providers),
            )  # fmt: skip
        logger.info("%s: providers %s", self.model_path.name, ", ".join(self.providers))
        self.inputs = [_spec(node) for node in self.session.get_inputs()]
        self.outputs = [_spec(node, strings=True) for node in self.session.get_outputs()]
        self.output_names = [spec.name for spec in self.outputs]
        # Warm up only where every input's dtype and rank are known: zeros of a guessed shape
        # could fail a model that would serve its real requests.
        if self.warmup and all(spec.dtype is not None and spec.shape is not None for spec in self.inputs):
            self.run({spec.name: spec.zeros() for spec in self.inputs})

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return self.inputs, self.outputs

    @inline  # a few comparisons: cheaper on the loop than a hop to a thread
    def preprocess(self, inputs: Any) -> dict[str, np.ndarray]:
        return check_tensors(inputs, self.inputs)

    def run(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.session is not None
        outputs = self.session.run(self.output_names, features)
        return dict(zip(self.output_names, outputs))

    def teardown(self) -> None:
        self.session = None
