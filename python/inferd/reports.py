"""What the engine reports of each model (ListModels, Setup, the metrics' collector): a
snapshot of domain facts, no transport in it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .batching import Batcher, BatchStats
from .graph.plan import NodeReport, Plan
from .repository import ModelEntry, ModelState
from .stages import StageStat
from .telemetry import Telemetry
from .workflow import TensorSpec

__all__ = ["BatchingReport", "ModelReport", "model_report"]

logger = logging.getLogger("inferd.engine")


@dataclass(frozen=True)
class BatchingReport:
    max_batch_size: int
    max_delay_ms: float
    stats: BatchStats
    #: Mean milliseconds a request that ran waited for its batch.
    mean_queue_ms: float


@dataclass(frozen=True)
class ModelReport:
    """What the engine knows of one model now (ListModels reports it)."""

    name: str
    workflow: str
    state: ModelState
    reason: str
    input_format: str
    streaming: bool
    unary: bool
    setup_mode: str
    description: str
    setup_ms: float
    inflight: int
    #: Calls naming this model, by final gRPC status code (with metrics on; else empty).
    requests: dict[str, int]
    stages: dict[str, StageStat]
    batching: BatchingReport | None
    #: The tensors its run takes and gives, where the workflow declares them (once set up).
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    #: A graph's nodes (empty for any other model).
    nodes: list[NodeReport]


def model_report(
    entry: ModelEntry, batcher: Batcher | None, inflight: int, telemetry: Telemetry | None, plan: Plan | None = None
) -> ModelReport:
    """One model's report now."""
    config = entry.config
    stages = entry.stages if entry.state is ModelState.READY else None
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    if stages is not None:
        try:
            inputs, outputs = stages.signature()
        except Exception:  # a workflow's own signature() failing must not fail the report
            logger.warning("model %s: signature() failed", entry.name, exc_info=True)
    batching = None
    if config.batching is not None:
        stats = batcher.stats if batcher is not None else BatchStats()
        taken = stats.queued_requests - stats.dropped
        batching = BatchingReport(
            config.batching.max_batch_size,
            config.batching.max_delay_ms,
            stats,
            stats.queue_ms_total / taken if taken > 0 else 0.0,
        )
    return ModelReport(
        name=entry.name,
        workflow=entry.workflow_name,
        state=entry.state,
        reason=entry.reason,
        input_format=config.input.format,
        streaming=entry.spec.streaming if entry.spec else False,
        unary=entry.spec.unary if entry.spec else False,
        setup_mode=config.setup,
        description=config.description,
        setup_ms=entry.setup_ms,
        inflight=inflight,
        requests=telemetry.requests_by_code(entry.name) if telemetry is not None else {},
        stages=entry.stats.snapshot(),
        batching=batching,
        inputs=inputs,
        outputs=outputs,
        nodes=plan.report() if plan is not None else [],
    )
