package dev.inferd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.google.protobuf.Any;
import com.google.protobuf.Duration;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Errors rebuilt from a status and its grpc-status-details-bin, as the server sends them. */
class ErrorsTest {
  private static StatusRuntimeException failure(int code, String message, String domain, String reason,
      Map<String, String> metadata, Any... more) {
    com.google.rpc.Status.Builder status = com.google.rpc.Status.newBuilder().setCode(code).setMessage(message)
        .addDetails(Any.pack(ErrorInfo.newBuilder().setDomain(domain).setReason(reason).putAllMetadata(metadata).build()));
    for (Any item : more) {
      status.addDetails(item);
    }
    return StatusProto.toStatusRuntimeException(status.build());
  }

  @Test
  void recordErrorWithNumbersAsNumbers() {
    InferdException e = InferdException.from(failure(3, "record 1: field malic_acid is missing", "inferd", "RecordError",
        Map.of("record", "1", "path", "malic_acid", "offset", "15")));
    InferdException.RecordError record = assertInstanceOf(InferdException.RecordError.class, e);
    assertInstanceOf(InferdException.InvalidInput.class, e);
    assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
    assertEquals("INVALID_ARGUMENT", e.codeName());
    assertEquals("RecordError", e.reason());
    assertEquals("record 1: field malic_acid is missing", e.getMessage());
    assertEquals(1L, e.details().get("record"));
    assertEquals(15L, e.offset());
    assertEquals("malic_acid", record.path());
    assertEquals("malic_acid", e.details().get("path"));
  }

  @Test
  void tensorAndModelErrors() {
    InferdException t = InferdException.from(failure(3, "tensor input: shape", "inferd", "TensorError", Map.of("tensor", "input")));
    assertEquals("input", assertInstanceOf(InferdException.TensorError.class, t).tensor());
    InferdException nf = InferdException.from(failure(5, "no model nope", "inferd", "ModelNotFound", Map.of("model", "nope")));
    assertInstanceOf(InferdException.ModelNotFound.class, nf);
    assertEquals("nope", nf.detail("model"));
    InferdException failed = InferdException.from(failure(9, "setup failed", "inferd", "ModelFailed", Map.of("reason", "boom")));
    assertInstanceOf(InferdException.ModelNotReady.class, failed);
    assertEquals("ModelFailed", failed.reason());
    assertEquals("boom", failed.details().get("reason"));
  }

  @Test
  void retryAfterFromMetadataRetryInfoOrDefault() {
    InferdException e = InferdException.from(failure(8, "busy: limit 1", "inferd", "ResourceExhausted",
        Map.of("model", "busy", "retry_after_ms", "250")));
    assertEquals(250L, assertInstanceOf(InferdException.ResourceExhausted.class, e).retryAfterMs());
    assertEquals(250L, e.details().get("retry_after_ms"));
    Any retry = Any.pack(RetryInfo.newBuilder().setRetryDelay(Duration.newBuilder().setNanos(300_000_000)).build());
    InferdException r = InferdException.from(failure(8, "busy", "inferd", "ResourceExhausted", Map.of(), retry));
    assertEquals(300L, r.details().get("retry_after_ms"));
    InferdException plain = InferdException.from(Status.RESOURCE_EXHAUSTED.withDescription("queue full").asRuntimeException());
    assertEquals(100L, plain.details().get("retry_after_ms"));
  }

  @Test
  void aReasonThatDoesNotFitTheCodeOrDomainFallsBackToTheCode() {
    InferdException other = InferdException.from(failure(5, "x", "example.com", "ModelNotFound", Map.of()));
    assertEquals("ModelNotFound", other.reason()); // by the code: NOT_FOUND
    assertEquals("ModelNotFound", other.details().get("reason"));
    InferdException mismatch = InferdException.from(failure(14, "x", "inferd", "RecordError", Map.of()));
    assertEquals("Unavailable", mismatch.reason());
    assertInstanceOf(InferdException.Unavailable.class, mismatch);
  }

  @Test
  void aStatusWithoutDetails() {
    InferdException e = InferdException.from(Status.DEADLINE_EXCEEDED.asRuntimeException());
    assertInstanceOf(InferdException.DeadlineExceeded.class, e);
    assertEquals("DEADLINE_EXCEEDED", e.getMessage());
    assertNull(e.record());
    InferdException unknown = InferdException.from(Status.DATA_LOSS.withDescription("lost").asRuntimeException());
    assertEquals("InferdError", unknown.reason());
    Metadata trailers = new Metadata();
    trailers.put(Metadata.Key.of("trace-id", Metadata.ASCII_STRING_MARSHALLER), "abc");
    trailers.put(Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER), "42");
    InferdException traced = InferdException.from(Status.RESOURCE_EXHAUSTED.asRuntimeException(trailers));
    assertEquals("abc", traced.details().get("trace_id"));
    assertEquals(42L, traced.details().get("retry_after_ms"));
  }
}
