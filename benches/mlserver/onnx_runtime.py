"""A small MLServer custom runtime: one ONNX file run with onnxruntime, like inferd's onnx
workflow (CPU, default session options), so that both servers do the same model work.

Input: the request's first input, decoded by MLServer's NumpyCodec (FP32 [n, 13] for wine),
fed to the model's first input. Output: every model output; string tensors (the wine
model's ``label``) as BYTES through StringCodec, the rest through NumpyCodec. Every output
keeps the batch dimension first, so MLServer's adaptive batching can split a batch's answer.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._outputs = [node.name for node in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0])
        results = self._session.run(self._outputs, {self._input: features})
        outputs = []
        for name, value in zip(self._outputs, results):
            if value.dtype.kind in "OUS":
                outputs.append(StringCodec.encode_output(name, [str(item) for item in value.reshape(-1)]))
            else:
                outputs.append(NumpyCodec.encode_output(name, np.ascontiguousarray(value)))
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=outputs)
