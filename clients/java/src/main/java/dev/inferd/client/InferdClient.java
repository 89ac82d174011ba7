package dev.inferd.client;

import dev.inferd.v1.InferResponse;
import dev.inferd.v1.InferenceGrpc;
import dev.inferd.v1.ListModelsRequest;
import dev.inferd.v1.LoadRequest;
import dev.inferd.v1.SetupRequest;
import dev.inferd.v1.StageTiming;
import dev.inferd.v1.StreamResponse;
import dev.inferd.v1.UnloadRequest;
import io.grpc.ChannelCredentials;
import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.AbstractStub;
import io.grpc.stub.MetadataUtils;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * A blocking client of an inferd server. Thread-safe; close it when done (it holds a channel).
 *
 * <pre>{@code
 * try (InferdClient client = InferdClient.builder("127.0.0.1:50051").build()) {
 *   InferResult result = client.infer("echo", "hello");
 *   System.out.println(result.text());
 * }
 * }</pre>
 *
 * Inputs are sent by their Java type (see {@link Codec#encodeInput}): a {@link JsonText} as
 * JSON exactly as given, a String as text, a {@link Blob} or {@code byte[]} as a blob, a
 * {@link Tensor} or a {@code Map<String, Tensor>} as tensors, anything else (maps, lists,
 * numbers, records) as JSON. Failures raise {@link InferdException} (a subclass per reason).
 */
public final class InferdClient implements AutoCloseable {
  /** Where clients connect unless told otherwise: $INFERD_ADDRESS, else this. */
  public static final String DEFAULT_ADDRESS = "127.0.0.1:50051";
  /** The default receive limit: 64 MiB, the largest message the server sends. */
  public static final int DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final String address;
  private final ManagedChannel channel;
  private final InferenceGrpc.InferenceBlockingStub inference;
  private final HealthGrpc.HealthBlockingStub health;
  private final Duration timeout;

  private InferdClient(Builder builder) {
    this.address = builder.address;
    this.timeout = builder.timeout;
    ChannelCredentials credentials;
    if (builder.tls == null) {
      credentials = InsecureChannelCredentials.create();
    } else {
      try {
        TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder();
        if (builder.tls.ca() != null) {
          tls.trustManager(new ByteArrayInputStream(builder.tls.ca()));
        }
        if ((builder.tls.certChain() == null) != (builder.tls.privateKey() == null)) {
          throw new IllegalArgumentException("TLS: give both the client certificate and its key, or neither");
        }
        if (builder.tls.certChain() != null) {
          tls.keyManager(new ByteArrayInputStream(builder.tls.certChain()), new ByteArrayInputStream(builder.tls.privateKey()));
        }
        credentials = tls.build();
      } catch (IOException e) {
        throw new UncheckedIOException("TLS: cannot read the PEM", e);
      }
    }
    ManagedChannelBuilder<?> channelBuilder =
        Grpc.newChannelBuilder(address, credentials).maxInboundMessageSize(builder.maxMessageBytes);
    if (builder.tls != null && builder.tls.serverName() != null && !builder.tls.serverName().isEmpty()) {
      channelBuilder.overrideAuthority(builder.tls.serverName());
    }
    this.channel = channelBuilder.build();
    InferenceGrpc.InferenceBlockingStub stub = InferenceGrpc.newBlockingStub(channel);
    if (builder.token != null && !builder.token.isEmpty()) {
      Metadata headers = new Metadata();
      headers.put(AUTHORIZATION, "Bearer " + builder.token);
      stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
    }
    this.inference = stub;
    this.health = HealthGrpc.newBlockingStub(channel); // health checks carry no token
  }

  /** A builder for a client of the server at {@code address} ("host:port" or a gRPC target). */
  public static Builder builder(String address) {
    return new Builder(address);
  }

  /** A builder for a client of $INFERD_ADDRESS, else {@link #DEFAULT_ADDRESS}. */
  public static Builder builder() {
    String env = System.getenv("INFERD_ADDRESS");
    return new Builder(env == null || env.isEmpty() ? DEFAULT_ADDRESS : env);
  }

  /** The address it connects to. */
  public String address() {
    return address;
  }

  // -- calls -------------------------------------------------------------------------------

  /** Runs one request through {@code model} and returns its answer. */
  public InferResult infer(String model, Object input) {
    return infer(model, input, InferOptions.DEFAULT);
  }

  /** Runs one request through {@code model}, with an id, parameters or a deadline. */
  public InferResult infer(String model, Object input, InferOptions options) {
    var request = Codec.request(model, input, options);
    InferResponse response = call(() -> deadline(inference, options.timeout()).infer(request));
    return new InferResult(response.getModel(), response.getId(),
        response.hasOutput() ? Codec.decodeOutput(response.getOutput()) : null,
        Codec.fromStruct(response.getParameters()), timings(response.getTimingsList()));
  }

  /** Streams {@code model}'s answer; close the ChunkStream to cancel the call early. */
  public ChunkStream stream(String model, Object input) {
    return stream(model, input, InferOptions.DEFAULT);
  }

  /** Streams {@code model}'s answer, with an id, parameters or a deadline. */
  public ChunkStream stream(String model, Object input, InferOptions options) {
    var request = Codec.request(model, input, options);
    Context.CancellableContext context = Context.current().withCancellation();
    Context previous = context.attach();
    try {
      // the call is bound to the context it starts in: cancelling that context cancels it
      Iterator<StreamResponse> responses = call(() -> deadline(inference, options.timeout()).stream(request));
      return new ChunkStream(context, responses);
    } catch (RuntimeException e) {
      context.cancel(null);
      throw e;
    } finally {
      context.detach(previous);
    }
  }

  /** Sets {@code model} up (idempotent); returns its setup time in milliseconds. */
  public double setup(String model) {
    return setup(model, null);
  }

  public double setup(String model, Duration timeout) {
    return call(() -> deadline(inference, timeout).setup(SetupRequest.newBuilder().setModel(model).build())).getSetupMs();
  }

  /** Loads a declared model (also after {@link #unload}); returns its setup time in ms. */
  public double load(String model) {
    return load(model, null);
  }

  public double load(String model, Duration timeout) {
    return call(() -> deadline(inference, timeout).load(LoadRequest.newBuilder().setModel(model).build())).getSetupMs();
  }

  /** Unloads a model once its requests in flight have finished; it refuses new ones. */
  public void unload(String model) {
    unload(model, null);
  }

  public void unload(String model, Duration timeout) {
    call(() -> deadline(inference, timeout).unload(UnloadRequest.newBuilder().setModel(model).build()));
  }

  /** The server's declared models, in its configuration's order. */
  public List<ModelInfo> models() {
    return models(null);
  }

  public List<ModelInfo> models(Duration timeout) {
    var response = call(() -> deadline(inference, timeout).listModels(ListModelsRequest.getDefaultInstance()));
    List<ModelInfo> models = new ArrayList<>();
    for (dev.inferd.v1.ModelInfo info : response.getModelsList()) {
      models.add(modelInfo(info));
    }
    return models;
  }

  /** The gRPC health status ("SERVING", "NOT_SERVING", ...) of the server (service "") or a model. */
  public String health(String service) {
    return health(service, null);
  }

  /** The server's own health status. */
  public String health() {
    return health("", null);
  }

  public String health(String service, Duration timeout) {
    var request = HealthCheckRequest.newBuilder().setService(service == null ? "" : service).build();
    return call(() -> deadline(health, timeout).check(request)).getStatus().name();
  }

  /** Closes the channel (calls in flight are cancelled). */
  @Override
  public void close() {
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // -- helpers -----------------------------------------------------------------------------

  private <S extends AbstractStub<S>> S deadline(S stub, Duration callTimeout) {
    Duration t = callTimeout != null ? callTimeout : timeout;
    return t == null ? stub : stub.withDeadlineAfter(t.toNanos(), TimeUnit.NANOSECONDS);
  }

  private static <T> T call(Supplier<T> rpc) {
    try {
      return rpc.get();
    } catch (StatusRuntimeException e) {
      throw InferdException.from(e);
    }
  }

  static Map<String, Double> timings(List<StageTiming> timings) {
    Map<String, Double> out = new LinkedHashMap<>();
    for (StageTiming t : timings) {
      out.put(t.getStage(), t.getMs());
    }
    return out;
  }

  static StreamChunk chunk(StreamResponse response) {
    return new StreamChunk(response.getIndex(), response.getId(),
        response.hasOutput() ? Codec.decodeOutput(response.getOutput()) : null,
        Codec.fromStruct(response.getParameters()), response.getFinal(), timings(response.getTimingsList()));
  }

  static ModelInfo modelInfo(dev.inferd.v1.ModelInfo info) {
    ModelInfo.State state = switch (info.getState()) {
      case MODEL_STATE_DECLARED -> ModelInfo.State.DECLARED;
      case MODEL_STATE_LOADING -> ModelInfo.State.LOADING;
      case MODEL_STATE_READY -> ModelInfo.State.READY;
      case MODEL_STATE_FAILED -> ModelInfo.State.FAILED;
      default -> ModelInfo.State.UNSPECIFIED;
    };
    Map<String, ModelInfo.StageStats> stages = new LinkedHashMap<>();
    for (var s : info.getStagesList()) {
      stages.put(s.getStage(), new ModelInfo.StageStats(s.getCount(), s.getMeanMs(), s.getLastMs(), s.getMaxMs()));
    }
    ModelInfo.BatchingStats batching = null;
    if (info.hasBatching()) {
      var b = info.getBatching();
      batching = new ModelInfo.BatchingStats(b.getMaxBatchSize(), b.getMaxDelayMs(), b.getBatches(), b.getRows(),
          new LinkedHashMap<>(b.getSizesMap()), new LinkedHashMap<>(b.getReleasesMap()), b.getDropped(), b.getRefused(),
          b.getMeanQueueMs(), b.getMaxQueueMs(), b.getWaiting(), b.getRunning());
    }
    return new ModelInfo(info.getName(), info.getWorkflow(), state, info.getReason(), info.getInputFormat(),
        info.getStreaming(), info.getUnary(), info.getSetupMode(), info.getDescription(), stages, batching,
        tensorInfos(info.getInputsList()), tensorInfos(info.getOutputsList()), new LinkedHashMap<>(info.getRequestsMap()));
  }

  private static List<ModelInfo.TensorInfo> tensorInfos(List<dev.inferd.v1.TensorInfo> tensors) {
    List<ModelInfo.TensorInfo> out = new ArrayList<>();
    for (var t : tensors) {
      DType dtype = t.getDtype() == dev.inferd.v1.DataType.DATA_TYPE_UNSPECIFIED ? null : DType.fromProto(t.getDtype());
      long[] shape = t.getAnyShape() ? null : t.getShapeList().stream().mapToLong(Long::longValue).toArray();
      out.add(new ModelInfo.TensorInfo(t.getName(), dtype, shape));
    }
    return out;
  }

  /** Builds an {@link InferdClient}. */
  public static final class Builder {
    private final String address;
    private Tls tls;
    private String token;
    private Duration timeout;
    private int maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;

    private Builder(String address) {
      this.address = address;
    }

    /** Connects over TLS (null: plaintext, the default). */
    public Builder tls(Tls tls) {
      this.tls = tls;
      return this;
    }

    /** Sends {@code authorization: Bearer <token>} on every call but health checks. */
    public Builder token(String token) {
      this.token = token;
      return this;
    }

    /** The default deadline of every call (null: none). */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /** The largest message the client accepts (default 64 MiB; gRPC's own default is 4 MiB). */
    public Builder maxMessageBytes(int bytes) {
      if (bytes <= 0) {
        throw new IllegalArgumentException("maxMessageBytes must be positive");
      }
      this.maxMessageBytes = bytes;
      return this;
    }

    public InferdClient build() {
      return new InferdClient(this);
    }
  }
}
