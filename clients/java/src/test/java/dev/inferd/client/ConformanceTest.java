package dev.inferd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * The Java runner of clients/conformance/cases.json: every case, in order, through
 * {@link InferdClient} as a user would call it, checked as tests/conformance_runner.py checks
 * it, and a report written as clients/conformance/README.md says. Runs only when
 * INFERD_CONFORMANCE (the server's connection file), INFERD_CONFORMANCE_CASES and
 * INFERD_CONFORMANCE_REPORT are set; fails if any case failed.
 */
class ConformanceTest {
  @Test
  void everyCase() throws IOException {
    String connectionPath = System.getenv("INFERD_CONFORMANCE");
    String casesPath = System.getenv("INFERD_CONFORMANCE_CASES");
    String reportPath = System.getenv("INFERD_CONFORMANCE_REPORT");
    assumeTrue(connectionPath != null && casesPath != null && reportPath != null,
        "INFERD_CONFORMANCE, INFERD_CONFORMANCE_CASES and INFERD_CONFORMANCE_REPORT are not all set");
    Map<String, Object> connection = map(Codec.fromJson(Files.readString(Path.of(connectionPath))));
    Map<String, Object> file = map(Codec.fromJson(Files.readString(Path.of(casesPath))));
    Map<String, Object> tokens = new HashMap<>(map(connection.get("tokens")));
    if (file.get("tokens") != null) {
      tokens.putAll(map(file.get("tokens")));
    }
    List<Object> results = new ArrayList<>();
    List<String> failed = new ArrayList<>();
    for (Object item : list(file.get("cases"))) {
      Map<String, Object> c = map(item);
      String name = (String) c.get("name");
      List<String> problems;
      try {
        problems = runCase(c, connection, tokens);
      } catch (RuntimeException e) {
        problems = List.of("raised " + e);
      }
      Map<String, Object> result = new LinkedHashMap<>();
      result.put("name", name);
      result.put("passed", problems.isEmpty());
      result.put("problems", problems);
      results.add(result);
      System.out.println((problems.isEmpty() ? "PASS " : "FAIL ") + name + (problems.isEmpty() ? "" : " " + problems));
      if (!problems.isEmpty()) {
        failed.add(name);
      }
    }
    Map<String, Object> report = new LinkedHashMap<>();
    report.put("language", "java");
    report.put("results", results);
    Files.writeString(Path.of(reportPath), Codec.toJson(report), StandardCharsets.UTF_8);
    System.out.println((results.size() - failed.size()) + " passed, " + failed.size() + " failed");
    assertEquals(List.of(), failed, "conformance cases failed");
  }

  static List<String> runCase(Map<String, Object> c, Map<String, Object> connection, Map<String, Object> tokens)
      throws IOException {
    boolean secure = "secure".equals(c.getOrDefault("server", "plain"));
    Tls tls = null;
    if (secure && !Boolean.TRUE.equals(c.get("plaintext"))) {
      tls = Tls.ca(Path.of((String) connection.get("ca"))).withServerName((String) connection.get("server_name"));
    }
    String tokenName = (String) c.get("token");
    String token = tokenName == null ? null : (String) tokens.get(tokenName);
    Duration timeout = Duration.ofMillis(c.containsKey("timeout_ms") ? ((Number) c.get("timeout_ms")).longValue() : 30_000);
    Map<String, Object> want = map(c.get("expect"));
    String address = (String) connection.get(secure ? "secure" : "plain");
    List<String> problems;
    try (InferdClient client = InferdClient.builder(address).tls(tls).token(token).timeout(timeout)
        .maxMessageBytes(((Number) connection.get("max_message_bytes")).intValue()).build()) {
      try {
        problems = call(client, c, want);
      } catch (InferdException e) {
        return error(e, want);
      }
    }
    if (!"OK".equals(want.get("code"))) {
      problems = new ArrayList<>(problems);
      problems.add("expected " + want.get("code") + ", the call succeeded");
    }
    return problems;
  }

  static List<String> call(InferdClient client, Map<String, Object> c, Map<String, Object> want) {
    String call = (String) c.get("call");
    String model = (String) c.getOrDefault("model", "");
    double tolerance = want.containsKey("tolerance") ? ((Number) want.get("tolerance")).doubleValue() : 0;
    switch (call) {
      case "health" -> {
        String status = client.health((String) c.getOrDefault("service", ""));
        return status.equals(want.get("health")) ? List.of() : List.of("health: " + status);
      }
      case "setup", "load" -> {
        double ms = call.equals("setup") ? client.setup(model) : client.load(model);
        return ms >= 0 ? List.of() : List.of("setup_ms " + ms);
      }
      case "unload" -> {
        client.unload(model);
        return List.of();
      }
      case "models" -> {
        Map<String, ModelInfo> found = new HashMap<>();
        for (ModelInfo info : client.models()) {
          found.put(info.name(), info);
        }
        List<String> problems = new ArrayList<>();
        for (Map.Entry<String, Object> entry : map(want.get("models")).entrySet()) {
          ModelInfo info = found.get(entry.getKey());
          if (info == null) {
            problems.add("model " + entry.getKey() + " not listed");
            continue;
          }
          Map<String, Object> seen = Map.of("state", info.state().name(), "input_format", info.inputFormat(),
              "unary", info.unary(), "streaming", info.streaming(), "batching", info.batching() != null);
          for (Map.Entry<String, Object> field : map(entry.getValue()).entrySet()) {
            if (!Objects.equals(seen.get(field.getKey()), field.getValue())) {
              problems.add(entry.getKey() + "." + field.getKey() + ": " + seen.get(field.getKey()) + ", expected " + field.getValue());
            }
          }
        }
        return problems;
      }
      default -> { }
    }
    Object input = input(map(c.get("input")));
    String id = (String) c.getOrDefault("id", "");
    Object wantId = want.getOrDefault("id", id);
    @SuppressWarnings("unchecked")
    Map<String, Object> parameters = (Map<String, Object>) c.get("parameters");
    InferOptions options = InferOptions.builder().id(id).parameters(parameters).build();
    if (call.equals("infer")) {
      InferResult result = client.infer(model, input, options);
      List<String> problems = new ArrayList<>();
      if (!result.id().equals(wantId)) {
        problems.add("id: " + result.id());
      }
      if (want.containsKey("output")) {
        problems.addAll(output(result.output(), map(want.get("output")), tolerance));
      }
      return problems;
    }
    if (!call.equals("stream")) {
      return List.of("unknown call " + call);
    }
    List<Object> chunks = new ArrayList<>();
    boolean last = false;
    Object cancelAfter = c.get("cancel_after");
    try (ChunkStream stream = client.stream(model, input, options)) {
      for (StreamChunk chunk : stream) {
        if (!chunk.id().equals(wantId) || chunk.index() != chunks.size()) {
          return List.of("chunk " + chunks.size() + ": id " + chunk.id() + ", index " + chunk.index());
        }
        if (chunk.output() != null) {
          chunks.add(chunk.output());
        }
        last = chunk.isFinal();
        if (cancelAfter != null && chunks.size() == ((Number) cancelAfter).intValue()) {
          stream.cancel();
          break;
        }
      }
    }
    List<String> problems = new ArrayList<>();
    if (!last && cancelAfter == null) {
      problems.add("no final message");
    }
    List<Object> wantChunks = new ArrayList<>();
    for (Object w : list(want.getOrDefault("chunks", List.of()))) {
      wantChunks.add(map(w).get("text"));
    }
    problems.addAll(close(chunks, wantChunks, 0, "chunks"));
    return problems;
  }

  static Object input(Map<String, Object> spec) {
    if (spec.containsKey("json")) {
      return spec.get("json");
    }
    if (spec.containsKey("json_text")) {
      return JsonText.of((String) spec.get("json_text"));
    }
    if (spec.containsKey("text")) {
      return spec.get("text");
    }
    if (spec.containsKey("blob")) {
      Map<String, Object> blob = map(spec.get("blob"));
      return new Blob(Base64.getDecoder().decode((String) blob.get("base64")), (String) blob.get("content_type"));
    }
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    for (Object t : list(spec.get("tensors"))) {
      Map<String, Object> tensor = map(t);
      tensors.put((String) tensor.get("name"), tensor(tensor));
    }
    return tensors;
  }

  /** A tensor spec's values in its dtype's own Java array. */
  static Tensor tensor(Map<String, Object> spec) {
    DType dtype = DType.fromLabel((String) spec.get("dtype"));
    long[] shape = list(spec.get("shape")).stream().mapToLong(v -> ((Number) v).longValue()).toArray();
    List<Object> values = list(spec.get("values"));
    int n = values.size();
    Object data = java.lang.reflect.Array.newInstance(dtype.arrayType().getComponentType(), n);
    for (int i = 0; i < n; i++) {
      Object v = values.get(i);
      switch (dtype) {
        case BOOL -> ((boolean[]) data)[i] = (Boolean) v;
        case INT8 -> ((byte[]) data)[i] = ((Number) v).byteValue();
        case INT16, UINT8 -> ((short[]) data)[i] = ((Number) v).shortValue();
        case INT32, UINT16 -> ((int[]) data)[i] = ((Number) v).intValue();
        case INT64, UINT32, UINT64 -> ((long[]) data)[i] = ((Number) v).longValue();
        case FLOAT16, FLOAT32 -> ((float[]) data)[i] = ((Number) v).floatValue();
        case FLOAT64 -> ((double[]) data)[i] = ((Number) v).doubleValue();
        case STRING -> ((String[]) data)[i] = (String) v;
        default -> throw new AssertionError(dtype);
      }
    }
    return new Tensor(dtype, data, shape);
  }

  static List<String> output(Object got, Map<String, Object> want, double tolerance) {
    if (want.containsKey("json")) {
      return close(got, want.get("json"), tolerance, "output");
    }
    if (want.containsKey("text")) {
      return close(got, want.get("text"), 0, "output");
    }
    if (want.containsKey("text_length")) {
      long n = ((Number) want.get("text_length")).longValue();
      return got instanceof String s && s.length() == n ? List.of()
          : List.of("output: " + (got instanceof String s ? s.length() + " characters" : "not text: " + got));
    }
    if (want.containsKey("blob")) {
      Map<String, Object> blob = map(want.get("blob"));
      Blob expected = new Blob(Base64.getDecoder().decode((String) blob.get("base64")), (String) blob.get("content_type"));
      return expected.equals(got) ? List.of() : List.of("output: blob " + got);
    }
    List<String> problems = new ArrayList<>();
    List<String> names = new ArrayList<>();
    for (Object t : list(want.get("tensors"))) {
      names.add((String) map(t).get("name"));
    }
    if (!(got instanceof Map<?, ?> gotMap) || !new TreeSet<>(gotMap.keySet()).equals(new TreeSet<>(names))) {
      return List.of(truncate("output: expected tensors " + names + ", got " + got));
    }
    for (Object t : list(want.get("tensors"))) {
      Map<String, Object> spec = map(t);
      Object value = gotMap.get(spec.get("name"));
      if (!(value instanceof Tensor tensor)) {
        problems.add("tensor " + spec.get("name") + ": not a Tensor: " + value);
        continue;
      }
      List<Object> wantShape = list(spec.get("shape"));
      List<Object> gotShape = new ArrayList<>();
      for (long d : tensor.shape()) {
        gotShape.add(d);
      }
      if (!tensor.dtype().label().equals(spec.get("dtype")) || !gotShape.equals(wantShape)) {
        problems.add("tensor " + spec.get("name") + ": " + tensor.dtype() + gotShape + ", expected " + spec.get("dtype") + wantShape);
        continue;
      }
      List<Object> wantValues = new ArrayList<>();
      for (Object v : list(spec.get("values"))) {
        wantValues.add(((String) spec.get("dtype")).startsWith("float") ? (Object) ((Number) v).doubleValue() : v);
      }
      problems.addAll(close(tensor.toList(), wantValues, tolerance, "tensor " + spec.get("name")));
    }
    return problems;
  }

  /** Where {@code got} differs from {@code want}: as the Python runner's _close. */
  static List<String> close(Object got, Object want, double tolerance, String where) {
    if (want instanceof Map<?, ?> w) {
      if (!(got instanceof Map<?, ?> g) || !g.keySet().equals(w.keySet())) {
        return List.of(truncate(where + ": expected keys " + new TreeSet<>(w.keySet()) + ", got " + got));
      }
      List<String> problems = new ArrayList<>();
      for (Object key : w.keySet()) {
        problems.addAll(close(g.get(key), w.get(key), tolerance, where + "." + key));
      }
      return problems;
    }
    if (want instanceof List<?> w) {
      if (!(got instanceof List<?> g) || g.size() != w.size()) {
        return List.of(truncate(where + ": expected " + w.size() + " items, got " + got));
      }
      List<String> problems = new ArrayList<>();
      for (int i = 0; i < w.size(); i++) {
        problems.addAll(close(g.get(i), w.get(i), tolerance, where + "[" + i + "]"));
      }
      return problems;
    }
    if (want instanceof Double w && got instanceof Number g) {
      double a = g.doubleValue();
      if (a == w || Math.abs(a - w) <= Math.max(tolerance * Math.max(Math.abs(a), Math.abs(w)), tolerance)) {
        return List.of();
      }
    } else if (want instanceof Long w && got instanceof Double g && g == w.doubleValue()) {
      return List.of(); // JSON's 1.0 is 1
    } else if (got != null && want != null && got.getClass() == want.getClass() && got.equals(want)) {
      return List.of();
    } else if (got == null && want == null) {
      return List.of();
    }
    return List.of(truncate(where + ": expected " + want + ", got " + got));
  }

  static List<String> error(InferdException e, Map<String, Object> want) {
    List<String> problems = new ArrayList<>();
    if (!e.codeName().equals(want.get("code"))) {
      problems.add("code: expected " + want.get("code") + ", got " + e.codeName() + " (" + e.getMessage() + ")");
    }
    Map<String, Object> spec = want.containsKey("error") ? map(want.get("error")) : Map.of();
    if (spec.containsKey("reason") && !e.reason().equals(spec.get("reason"))) {
      problems.add("reason: expected " + spec.get("reason") + ", got " + e.reason());
    }
    String message = e.getMessage() == null ? "" : e.getMessage();
    for (Object part : list(spec.getOrDefault("message_contains", List.of()))) {
      if (!message.contains((String) part)) {
        problems.add("message '" + message + "' lacks '" + part + "'");
      }
    }
    for (Object part : list(spec.getOrDefault("message_excludes", List.of()))) {
      if (message.contains((String) part)) {
        problems.add("message '" + message + "' has '" + part + "'");
      }
    }
    if (spec.containsKey("details")) {
      for (Map.Entry<String, Object> entry : map(spec.get("details")).entrySet()) {
        Object got = e.details().get(entry.getKey());
        if (!Objects.equals(got, entry.getValue())) {
          problems.add("details[" + entry.getKey() + "]: expected " + entry.getValue() + ", got " + got
              + (got == null ? "" : " (" + got.getClass().getSimpleName() + ")"));
        }
      }
    }
    return problems;
  }

  private static String truncate(String s) {
    return s.length() > 300 ? s.substring(0, 300) : s;
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> map(Object o) {
    return (Map<String, Object>) o;
  }

  @SuppressWarnings("unchecked")
  static List<Object> list(Object o) {
    return (List<Object>) o;
  }
}
