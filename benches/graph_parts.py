"""Models for benches/graph.py: a model that answers at once (so that a graph hop's own cost
shows), and the seed's graph in Python (service/stories.py is the served one)."""

from __future__ import annotations

from typing import Any

from inferd import Workflow


class Identity(Workflow):
    """Answers its input; its run is marked inline in the configuration (no thread hop)."""

    def run(self, features: Any) -> Any:
        return features
