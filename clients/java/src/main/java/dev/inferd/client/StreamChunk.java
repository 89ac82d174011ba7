package dev.inferd.client;

import java.util.Map;

/**
 * One message of a Stream call: its {@code index} from 0, the request's {@code id}, the chunk's
 * {@code output} (as in {@link InferResult}; null on a final message with nothing more),
 * the model's {@code parameters} for it, and {@code isFinal} with the {@code timings} on the
 * last message.
 */
public record StreamChunk(long index, String id, Object output, Map<String, Object> parameters, boolean isFinal,
    Map<String, Double> timings) {
  /** The output as text. */
  public String text() {
    return (String) output;
  }
}
