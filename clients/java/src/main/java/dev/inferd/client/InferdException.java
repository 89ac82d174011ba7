package dev.inferd.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A failed call: the gRPC status {@link #code()}, the server's {@link #getMessage() message},
 * the error class the server raised ({@link #reason()}: "RecordError", "ModelNotFound", ...)
 * and its {@link #details()}, rebuilt from the {@code google.rpc.ErrorInfo} that the server
 * puts in {@code grpc-status-details-bin}. {@code record}, {@code offset} and
 * {@code retry_after_ms} are {@link Long}s, every other detail a {@link String}.
 *
 * <p>Each reason has its subclass, so {@code catch (InferdException.ModelNotFound e)} works;
 * {@code RecordError} and {@code TensorError} are kinds of {@code InvalidInput}, and
 * {@code ModelFailed} of {@code ModelNotReady}, as on the server.
 */
public class InferdException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private static final Set<String> NUMBERS = Set.of("record", "offset", "retry_after_ms");

  private final Status.Code code;
  private final String reason;
  private final Map<String, Object> details;

  protected InferdException(Status.Code code, String reason, String message, Map<String, Object> details, Throwable cause) {
    super(message, cause);
    this.code = code;
    this.reason = reason;
    this.details = Collections.unmodifiableMap(new LinkedHashMap<>(details));
  }

  /** The gRPC status code. */
  public Status.Code code() {
    return code;
  }

  /** The status code's name: "INVALID_ARGUMENT", "NOT_FOUND", ... */
  public String codeName() {
    return code.name();
  }

  /** The error class: the ErrorInfo's reason where it is one of inferd's, else the code's. */
  public String reason() {
    return reason;
  }

  /** The ErrorInfo's metadata (model, record, path, tensor, retry_after_ms, ...). */
  public Map<String, Object> details() {
    return details;
  }

  /** A detail as a string, or null. */
  public String detail(String key) {
    Object value = details.get(key);
    return value == null ? null : value.toString();
  }

  /** A numeric detail (record, offset, retry_after_ms), or null. */
  public Long number(String key) {
    return details.get(key) instanceof Long l ? l : null;
  }

  /** The index of the record at fault, or null. */
  public Long record() {
    return number("record");
  }

  /** The byte offset of malformed JSON, or null. */
  public Long offset() {
    return number("offset");
  }

  @Override
  public String toString() {
    return reason + " (" + code + "): " + getMessage() + (details.isEmpty() ? "" : " " + details);
  }

  /** The request is malformed: bad JSON, a missing or ill-typed field, a bad parameter. */
  public static class InvalidInput extends InferdException {
    private static final long serialVersionUID = 1L;

    InvalidInput(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** A record does not fit the model's schema: record, path, expected, value, offset. */
  public static final class RecordError extends InvalidInput {
    private static final long serialVersionUID = 1L;

    RecordError(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }

    /** The field path at fault, or null. */
    public String path() {
      return detail("path");
    }
  }

  /** A request tensor has the wrong name, dtype or shape for the model. */
  public static final class TensorError extends InvalidInput {
    private static final long serialVersionUID = 1L;

    TensorError(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }

    /** The tensor's name. */
    public String tensor() {
      return detail("tensor");
    }
  }

  /** No model of that name is declared. */
  public static final class ModelNotFound extends InferdException {
    private static final long serialVersionUID = 1L;

    ModelNotFound(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** The model is not set up (explicit setup, or unloaded). */
  public static class ModelNotReady extends InferdException {
    private static final long serialVersionUID = 1L;

    ModelNotReady(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** The model's setup failed; {@code detail("reason")} says why. */
  public static final class ModelFailed extends ModelNotReady {
    private static final long serialVersionUID = 1L;

    ModelFailed(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** Too many requests in flight or queued: retry after {@link #retryAfterMs()}. */
  public static final class ResourceExhausted extends InferdException {
    private static final long serialVersionUID = 1L;

    ResourceExhausted(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }

    /** How long to wait before retrying, in milliseconds (100 when the server said nothing). */
    public long retryAfterMs() {
      Long ms = number("retry_after_ms");
      return ms == null ? 100 : ms;
    }
  }

  /** The deadline passed (the client's own, or the model's limit on the server). */
  public static final class DeadlineExceeded extends InferdException {
    private static final long serialVersionUID = 1L;

    DeadlineExceeded(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** The call was cancelled. */
  public static final class Cancelled extends InferdException {
    private static final long serialVersionUID = 1L;

    Cancelled(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** No token, or a token the server does not know. */
  public static final class Unauthenticated extends InferdException {
    private static final long serialVersionUID = 1L;

    Unauthenticated(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** The token is known but not allowed to do this. */
  public static final class PermissionDenied extends InferdException {
    private static final long serialVersionUID = 1L;

    PermissionDenied(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** The server, or a service the model depends on, cannot be reached; retrying may help. */
  public static final class Unavailable extends InferdException {
    private static final long serialVersionUID = 1L;

    Unavailable(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** The model does not offer this call (Stream on a unary model, ...). */
  public static final class Unimplemented extends InferdException {
    private static final long serialVersionUID = 1L;

    Unimplemented(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  /** The model or the server failed; the message is generic on purpose. */
  public static final class InternalError extends InferdException {
    private static final long serialVersionUID = 1L;

    InternalError(Status.Code c, String r, String m, Map<String, Object> d, Throwable t) {
      super(c, r, m, d, t);
    }
  }

  // -- rebuilding an error from a status ---------------------------------------------------

  /** The error class of each of the server's reasons, with the code it comes with. */
  private static final Map<String, Status.Code> REASONS = Map.ofEntries(
      Map.entry("InvalidInput", Status.Code.INVALID_ARGUMENT),
      Map.entry("RecordError", Status.Code.INVALID_ARGUMENT),
      Map.entry("TensorError", Status.Code.INVALID_ARGUMENT),
      Map.entry("ModelNotFound", Status.Code.NOT_FOUND),
      Map.entry("ModelNotReady", Status.Code.FAILED_PRECONDITION),
      Map.entry("ModelFailed", Status.Code.FAILED_PRECONDITION),
      Map.entry("ResourceExhausted", Status.Code.RESOURCE_EXHAUSTED),
      Map.entry("DeadlineExceeded", Status.Code.DEADLINE_EXCEEDED),
      Map.entry("Cancelled", Status.Code.CANCELLED),
      Map.entry("Unauthenticated", Status.Code.UNAUTHENTICATED),
      Map.entry("PermissionDenied", Status.Code.PERMISSION_DENIED),
      Map.entry("Unavailable", Status.Code.UNAVAILABLE),
      Map.entry("Unimplemented", Status.Code.UNIMPLEMENTED),
      Map.entry("InternalError", Status.Code.INTERNAL));

  /** The reason a status code stands for when the server named none of its own. */
  static String reasonForCode(Status.Code code) {
    return switch (code) {
      case INVALID_ARGUMENT -> "InvalidInput";
      case NOT_FOUND -> "ModelNotFound";
      case FAILED_PRECONDITION -> "ModelNotReady";
      case RESOURCE_EXHAUSTED -> "ResourceExhausted";
      case DEADLINE_EXCEEDED -> "DeadlineExceeded";
      case CANCELLED -> "Cancelled";
      case UNAUTHENTICATED -> "Unauthenticated";
      case PERMISSION_DENIED -> "PermissionDenied";
      case UNAVAILABLE -> "Unavailable";
      case UNIMPLEMENTED -> "Unimplemented";
      case INTERNAL -> "InternalError";
      default -> "InferdError";
    };
  }

  /** The inferd error of a failed call (a StatusRuntimeException or StatusException). */
  public static InferdException from(Throwable failure) {
    Status status = Status.fromThrowable(failure);
    Metadata trailers = Status.trailersFromThrowable(failure);
    return from(status, trailers, failure);
  }

  static InferdException from(Status status, Metadata trailers, Throwable cause) {
    Status.Code code = status.getCode();
    String message = status.getDescription() != null ? status.getDescription() : code.name();
    Map<String, Object> details = new LinkedHashMap<>();
    String named = "";
    com.google.rpc.Status rich = trailers == null ? null : StatusProto.fromStatusAndTrailers(status, trailers);
    if (rich != null && trailers.containsKey(DETAILS_KEY)) {
      for (Any item : rich.getDetailsList()) {
        try {
          if (item.is(ErrorInfo.class)) {
            ErrorInfo info = item.unpack(ErrorInfo.class);
            details.putAll(info.getMetadataMap());
            if ("inferd".equals(info.getDomain())) {
              named = info.getReason();
            }
            details.putIfAbsent("reason", info.getReason());
          } else if (item.is(RetryInfo.class)) {
            RetryInfo retry = item.unpack(RetryInfo.class);
            long ms = retry.getRetryDelay().getSeconds() * 1000 + retry.getRetryDelay().getNanos() / 1_000_000;
            details.putIfAbsent("retry_after_ms", Long.toString(ms));
          }
        } catch (InvalidProtocolBufferException e) {
          // a detail we cannot read: the status itself still stands
        }
      }
    }
    if (trailers != null) {
      String trace = trailers.get(TRACE_ID);
      if (trace != null) {
        details.put("trace_id", trace);
      }
      String retry = trailers.get(RETRY_AFTER);
      if (retry != null) {
        details.putIfAbsent("retry_after_ms", retry);
      }
    }
    return build(code, named, message, details, cause);
  }

  /** The error for a code, the server's reason (may be ""), message and metadata (strings). */
  public static InferdException build(Status.Code code, String named, String message, Map<String, ?> metadata, Throwable cause) {
    String reason = REASONS.get(named) == code ? named : reasonForCode(code);
    Map<String, Object> typed = new LinkedHashMap<>(metadata);
    for (String key : NUMBERS) {
      if (typed.get(key) instanceof String s) {
        try {
          typed.put(key, Long.parseLong(s.trim()));
        } catch (NumberFormatException e) {
          // left as the server wrote it
        }
      }
    }
    if (reason.equals("ResourceExhausted") && !(typed.get("retry_after_ms") instanceof Long)) {
      typed.put("retry_after_ms", 100L);
    }
    return switch (reason) {
      case "InvalidInput" -> new InvalidInput(code, reason, message, typed, cause);
      case "RecordError" -> new RecordError(code, reason, message, typed, cause);
      case "TensorError" -> new TensorError(code, reason, message, typed, cause);
      case "ModelNotFound" -> new ModelNotFound(code, reason, message, typed, cause);
      case "ModelNotReady" -> new ModelNotReady(code, reason, message, typed, cause);
      case "ModelFailed" -> new ModelFailed(code, reason, message, typed, cause);
      case "ResourceExhausted" -> new ResourceExhausted(code, reason, message, typed, cause);
      case "DeadlineExceeded" -> new DeadlineExceeded(code, reason, message, typed, cause);
      case "Cancelled" -> new Cancelled(code, reason, message, typed, cause);
      case "Unauthenticated" -> new Unauthenticated(code, reason, message, typed, cause);
      case "PermissionDenied" -> new PermissionDenied(code, reason, message, typed, cause);
      case "Unavailable" -> new Unavailable(code, reason, message, typed, cause);
      case "Unimplemented" -> new Unimplemented(code, reason, message, typed, cause);
      case "InternalError" -> new InternalError(code, reason, message, typed, cause);
      default -> new InferdException(code, reason, message, typed, cause);
    };
  }

  static boolean isStatus(Throwable t) {
    return t instanceof StatusRuntimeException || t instanceof StatusException;
  }

  private static final Metadata.Key<byte[]> DETAILS_KEY =
      Metadata.Key.of("grpc-status-details-bin", Metadata.BINARY_BYTE_MARSHALLER);
  private static final Metadata.Key<String> TRACE_ID = Metadata.Key.of("trace-id", Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> RETRY_AFTER =
      Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER);
}
