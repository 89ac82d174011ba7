package dev.inferd.client;

import java.util.List;
import java.util.Map;

/**
 * What the server reports of one declared model (ListModels).
 *
 * @param state READY, DECLARED, LOADING, FAILED (UNSPECIFIED: never sent)
 * @param reason why it failed, when state is FAILED
 * @param inputFormat "passthrough", "records" or "tensor"
 * @param setupMode "eager", "lazy" or "explicit"
 * @param stages stage name to its statistics, including "setup"
 * @param batching what its batcher did; null when batching is off
 * @param inputs the tensors its run takes, where the workflow declares them
 * @param requests calls naming it by final status code ("OK", "CANCELLED", ...)
 */
public record ModelInfo(String name, String workflow, State state, String reason, String inputFormat, boolean streaming,
    boolean unary, String setupMode, String description, Map<String, StageStats> stages, BatchingStats batching,
    List<TensorInfo> inputs, List<TensorInfo> outputs, Map<String, Long> requests) {

  /** A model's state. */
  public enum State { UNSPECIFIED, DECLARED, LOADING, READY, FAILED }

  /** How long a stage takes, over the requests answered since the server started. */
  public record StageStats(long count, double meanMs, double lastMs, double maxMs) {}

  /**
   * A tensor a model declares: dtype null for any dtype; shape with -1 where any size goes,
   * null for any shape.
   */
  public record TensorInfo(String name, DType dtype, long[] shape) {}

  /** What a model's dynamic batcher did since the server started (see BatchingStats in the proto). */
  public record BatchingStats(int maxBatchSize, double maxDelayMs, long batches, long rows, Map<Integer, Long> sizes,
      Map<String, Long> releases, long dropped, long refused, double meanQueueMs, double maxQueueMs, long waiting,
      long running) {}
}
