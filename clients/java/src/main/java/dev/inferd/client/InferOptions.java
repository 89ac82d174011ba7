package dev.inferd.client;

import java.time.Duration;
import java.util.Map;

/**
 * A call's options: the request's {@code id} (echoed in the answer), its {@code parameters}
 * (sent as a {@code google.protobuf.Struct}: maps, lists, numbers, strings, booleans) and its
 * deadline ({@code timeout}; null: the client's default).
 *
 * <pre>{@code
 * client.infer("echo", "hi", InferOptions.builder().id("r-1").parameter("uppercase", true).build());
 * }</pre>
 */
public record InferOptions(String id, Map<String, ?> parameters, Duration timeout) {
  public static final InferOptions DEFAULT = new InferOptions("", Map.of(), null);

  public InferOptions {
    id = id == null ? "" : id;
    parameters = parameters == null ? Map.of() : parameters;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Builds InferOptions. */
  public static final class Builder {
    private String id = "";
    private final Map<String, Object> parameters = new java.util.LinkedHashMap<>();
    private Duration timeout;

    public Builder id(String id) {
      this.id = id;
      return this;
    }

    public Builder parameters(Map<String, ?> parameters) {
      if (parameters != null) {
        this.parameters.putAll(parameters);
      }
      return this;
    }

    public Builder parameter(String name, Object value) {
      parameters.put(name, value);
      return this;
    }

    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    public InferOptions build() {
      return new InferOptions(id, parameters, timeout);
    }
  }
}
