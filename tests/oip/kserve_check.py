"""Drives an inferd server with the KServe SDK's InferenceGRPCClient, in the OIP clients' venv
(.tools/venv-oip). Prints one JSON object of what it saw (tests/test_oip_clients.py).

    python kserve_check.py ADDRESS
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

WINE = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]


async def main(address: str) -> dict:
    client = InferenceGRPCClient(address, timeout=30)
    seen = {"live": await client.is_server_live(), "ready": await client.is_model_ready("wine")}
    tensor = InferInput("input", [2, 13], "FP32")
    tensor.set_data_from_numpy(np.array([WINE, WINE], dtype=np.float32), binary_data=True)
    response = await client.infer(InferRequest("wine", [tensor], request_id="kserve-1"))
    seen["id"] = response.id
    seen["outputs"] = {
        output.name: [item.decode() if isinstance(item, bytes) else item for item in output.as_numpy().tolist()]
        for output in response.outputs
    }
    typed = InferInput("x", [3], "INT64", data=[1, -2, 3])
    response = await client.infer(InferRequest("tensor-echo", [typed]))
    seen["typed"] = response.outputs[0].as_numpy().tolist()
    try:
        await client.infer(InferRequest("nope", [typed]))
    except Exception as error:  # the SDK raises grpc's own error
        seen["unknown_model"] = [str(getattr(error, "code", lambda: "")()), str(getattr(error, "details", lambda: error)())]
    await client.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
