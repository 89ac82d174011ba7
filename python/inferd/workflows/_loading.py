"""One process-wide lock around ``transformers``' ``from_pretrained``.

Loading patches torch globally for a while (``init_empty_weights`` and meta-device
initialisation swap ``nn.Module.register_parameter`` and the default device), so two models
set up at once in different threads can corrupt each other ("Cannot copy out of meta
tensor"). Every workflow that loads with transformers holds this lock while it does.
"""

from __future__ import annotations

import threading

__all__ = ["TRANSFORMERS_LOAD_LOCK"]

TRANSFORMERS_LOAD_LOCK = threading.Lock()
