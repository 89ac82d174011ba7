"""Inference graphs: several models served as one (docs/graphs.md).

- :mod:`.plan`: a graph's declared nodes -> one plan, validated at load;
- :mod:`.run`: the executor, and the workflow that serves a plan;
- :mod:`.handles`: how any workflow calls the server's other models (``self.models``);
- :mod:`.functions`: glue functions for ``function`` nodes.
"""

from .handles import Chunks, ModelHandle, Models, current_caller
from .plan import Plan, build_plans
from .run import SKIPPED, GraphWorkflow, StreamingGraphWorkflow, graph_class

__all__ = [
    "Chunks", "ModelHandle", "Models", "current_caller", "Plan", "build_plans",
    "SKIPPED", "GraphWorkflow", "StreamingGraphWorkflow", "graph_class",
]  # fmt: skip
