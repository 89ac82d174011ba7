"""One process-wide lock around building torch models in process.

``transformers``' ``from_pretrained`` patches torch globally for a while (``init_empty_weights``
and meta-device initialisation swap ``nn.Module.register_parameter`` and the default device).
Any torch model built in another thread meanwhile gets parameters on the meta device ("Cannot
copy out of meta tensor"), whether transformers builds it or not: eager models are set up
concurrently, so this happened to the torch workflow while textgen loaded. Every workflow that
builds a torch model (torch, textgen, tts) holds this lock while it does.
"""

from __future__ import annotations

import threading

__all__ = ["MODEL_LOAD_LOCK"]

MODEL_LOAD_LOCK = threading.Lock()
