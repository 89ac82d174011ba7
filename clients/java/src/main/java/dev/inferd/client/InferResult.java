package dev.inferd.client;

import java.util.Map;

/**
 * The answer to one Infer call. {@code output} is as {@link Codec#decodeOutput} makes it:
 * JSON as Java maps, lists, Long/Double, String, Boolean; text as a String; a {@link Blob};
 * or tensors as a {@code Map<String, Tensor>}. {@code parameters} is what the model reported
 * about its output, {@code timings} the milliseconds per stage in the order they ran.
 */
public record InferResult(String model, String id, Object output, Map<String, Object> parameters, Map<String, Double> timings) {
  /** The output as text (a ClassCastException if it is not). */
  public String text() {
    return (String) output;
  }

  /** The output as a blob. */
  public Blob blob() {
    return (Blob) output;
  }

  /** The output tensors, by name. */
  @SuppressWarnings("unchecked")
  public Map<String, Tensor> tensors() {
    return (Map<String, Tensor>) output;
  }
}
