package dev.inferd.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * The inference service.
 * </pre>
 */
@io.grpc.stub.annotations.GrpcGenerated
public final class InferenceGrpc {

  private InferenceGrpc() {}

  public static final java.lang.String SERVICE_NAME = "inferd.v1.Inference";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.inferd.v1.SetupRequest,
      dev.inferd.v1.SetupResponse> getSetupMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Setup",
      requestType = dev.inferd.v1.SetupRequest.class,
      responseType = dev.inferd.v1.SetupResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.inferd.v1.SetupRequest,
      dev.inferd.v1.SetupResponse> getSetupMethod() {
    io.grpc.MethodDescriptor<dev.inferd.v1.SetupRequest, dev.inferd.v1.SetupResponse> getSetupMethod;
    if ((getSetupMethod = InferenceGrpc.getSetupMethod) == null) {
      synchronized (InferenceGrpc.class) {
        if ((getSetupMethod = InferenceGrpc.getSetupMethod) == null) {
          InferenceGrpc.getSetupMethod = getSetupMethod =
              io.grpc.MethodDescriptor.<dev.inferd.v1.SetupRequest, dev.inferd.v1.SetupResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Setup"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.SetupRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.SetupResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InferenceMethodDescriptorSupplier("Setup"))
              .build();
        }
      }
    }
    return getSetupMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.inferd.v1.InferRequest,
      dev.inferd.v1.InferResponse> getInferMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Infer",
      requestType = dev.inferd.v1.InferRequest.class,
      responseType = dev.inferd.v1.InferResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.inferd.v1.InferRequest,
      dev.inferd.v1.InferResponse> getInferMethod() {
    io.grpc.MethodDescriptor<dev.inferd.v1.InferRequest, dev.inferd.v1.InferResponse> getInferMethod;
    if ((getInferMethod = InferenceGrpc.getInferMethod) == null) {
      synchronized (InferenceGrpc.class) {
        if ((getInferMethod = InferenceGrpc.getInferMethod) == null) {
          InferenceGrpc.getInferMethod = getInferMethod =
              io.grpc.MethodDescriptor.<dev.inferd.v1.InferRequest, dev.inferd.v1.InferResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Infer"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.InferRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.InferResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InferenceMethodDescriptorSupplier("Infer"))
              .build();
        }
      }
    }
    return getInferMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.inferd.v1.InferRequest,
      dev.inferd.v1.StreamResponse> getStreamMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Stream",
      requestType = dev.inferd.v1.InferRequest.class,
      responseType = dev.inferd.v1.StreamResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.inferd.v1.InferRequest,
      dev.inferd.v1.StreamResponse> getStreamMethod() {
    io.grpc.MethodDescriptor<dev.inferd.v1.InferRequest, dev.inferd.v1.StreamResponse> getStreamMethod;
    if ((getStreamMethod = InferenceGrpc.getStreamMethod) == null) {
      synchronized (InferenceGrpc.class) {
        if ((getStreamMethod = InferenceGrpc.getStreamMethod) == null) {
          InferenceGrpc.getStreamMethod = getStreamMethod =
              io.grpc.MethodDescriptor.<dev.inferd.v1.InferRequest, dev.inferd.v1.StreamResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Stream"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.InferRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.StreamResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InferenceMethodDescriptorSupplier("Stream"))
              .build();
        }
      }
    }
    return getStreamMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.inferd.v1.ListModelsRequest,
      dev.inferd.v1.ListModelsResponse> getListModelsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListModels",
      requestType = dev.inferd.v1.ListModelsRequest.class,
      responseType = dev.inferd.v1.ListModelsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.inferd.v1.ListModelsRequest,
      dev.inferd.v1.ListModelsResponse> getListModelsMethod() {
    io.grpc.MethodDescriptor<dev.inferd.v1.ListModelsRequest, dev.inferd.v1.ListModelsResponse> getListModelsMethod;
    if ((getListModelsMethod = InferenceGrpc.getListModelsMethod) == null) {
      synchronized (InferenceGrpc.class) {
        if ((getListModelsMethod = InferenceGrpc.getListModelsMethod) == null) {
          InferenceGrpc.getListModelsMethod = getListModelsMethod =
              io.grpc.MethodDescriptor.<dev.inferd.v1.ListModelsRequest, dev.inferd.v1.ListModelsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListModels"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.ListModelsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.ListModelsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InferenceMethodDescriptorSupplier("ListModels"))
              .build();
        }
      }
    }
    return getListModelsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.inferd.v1.LoadRequest,
      dev.inferd.v1.SetupResponse> getLoadMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Load",
      requestType = dev.inferd.v1.LoadRequest.class,
      responseType = dev.inferd.v1.SetupResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.inferd.v1.LoadRequest,
      dev.inferd.v1.SetupResponse> getLoadMethod() {
    io.grpc.MethodDescriptor<dev.inferd.v1.LoadRequest, dev.inferd.v1.SetupResponse> getLoadMethod;
    if ((getLoadMethod = InferenceGrpc.getLoadMethod) == null) {
      synchronized (InferenceGrpc.class) {
        if ((getLoadMethod = InferenceGrpc.getLoadMethod) == null) {
          InferenceGrpc.getLoadMethod = getLoadMethod =
              io.grpc.MethodDescriptor.<dev.inferd.v1.LoadRequest, dev.inferd.v1.SetupResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Load"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.LoadRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.SetupResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InferenceMethodDescriptorSupplier("Load"))
              .build();
        }
      }
    }
    return getLoadMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.inferd.v1.UnloadRequest,
      dev.inferd.v1.UnloadResponse> getUnloadMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Unload",
      requestType = dev.inferd.v1.UnloadRequest.class,
      responseType = dev.inferd.v1.UnloadResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.inferd.v1.UnloadRequest,
      dev.inferd.v1.UnloadResponse> getUnloadMethod() {
    io.grpc.MethodDescriptor<dev.inferd.v1.UnloadRequest, dev.inferd.v1.UnloadResponse> getUnloadMethod;
    if ((getUnloadMethod = InferenceGrpc.getUnloadMethod) == null) {
      synchronized (InferenceGrpc.class) {
        if ((getUnloadMethod = InferenceGrpc.getUnloadMethod) == null) {
          InferenceGrpc.getUnloadMethod = getUnloadMethod =
              io.grpc.MethodDescriptor.<dev.inferd.v1.UnloadRequest, dev.inferd.v1.UnloadResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Unload"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.UnloadRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.inferd.v1.UnloadResponse.getDefaultInstance()))
              .setSchemaDescriptor(new InferenceMethodDescriptorSupplier("Unload"))
              .build();
        }
      }
    }
    return getUnloadMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static InferenceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InferenceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InferenceStub>() {
        @java.lang.Override
        public InferenceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InferenceStub(channel, callOptions);
        }
      };
    return InferenceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports all types of calls on the service
   */
  public static InferenceBlockingV2Stub newBlockingV2Stub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InferenceBlockingV2Stub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InferenceBlockingV2Stub>() {
        @java.lang.Override
        public InferenceBlockingV2Stub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InferenceBlockingV2Stub(channel, callOptions);
        }
      };
    return InferenceBlockingV2Stub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static InferenceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InferenceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InferenceBlockingStub>() {
        @java.lang.Override
        public InferenceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InferenceBlockingStub(channel, callOptions);
        }
      };
    return InferenceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static InferenceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<InferenceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<InferenceFutureStub>() {
        @java.lang.Override
        public InferenceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new InferenceFutureStub(channel, callOptions);
        }
      };
    return InferenceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * The inference service.
   * </pre>
   */
  public interface AsyncService {

    /**
     * <pre>
     * Prepares a model that the configuration declares (loads weights, warms up). Idempotent:
     * a ready model answers at once, and concurrent calls for one model share one setup.
     * Only declared models can be set up: NOT_FOUND otherwise. A failed setup answers
     * FAILED_PRECONDITION with the reason; calling Setup again retries it.
     * </pre>
     */
    default void setup(dev.inferd.v1.SetupRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.SetupResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getSetupMethod(), responseObserver);
    }

    /**
     * <pre>
     * Runs one request through the model's stages and returns its output.
     * </pre>
     */
    default void infer(dev.inferd.v1.InferRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.InferResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getInferMethod(), responseObserver);
    }

    /**
     * <pre>
     * Runs one request through a streaming model and sends its output piece by piece
     * (tokens, audio chunks) as the model produces them. The last message has `final` set.
     * Cancelling the call stops the model's generator.
     * </pre>
     */
    default void stream(dev.inferd.v1.InferRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.StreamResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getStreamMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists the declared models with their state and stage timings.
     * </pre>
     */
    default void listModels(dev.inferd.v1.ListModelsRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.ListModelsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListModelsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Loads a declared model: sets it up as Setup does, and also after an Unload (which Setup
     * refuses). A model that is ready is reloaded: a new instance sets up beside it and takes
     * the new requests once ready, the old one finishes its requests and is torn down; a failed
     * reload leaves the old one serving (FAILED_PRECONDITION with the reason). Only models the
     * configuration declares load: NOT_FOUND otherwise; a request never names code or files.
     * </pre>
     */
    default void load(dev.inferd.v1.LoadRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.SetupResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getLoadMethod(), responseObserver);
    }

    /**
     * <pre>
     * Unloads a model: its new requests are refused at once (FAILED_PRECONDITION), those in
     * flight finish, then its teardown runs and what it held is freed. Load brings it back.
     * </pre>
     */
    default void unload(dev.inferd.v1.UnloadRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.UnloadResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getUnloadMethod(), responseObserver);
    }
  }

  /**
   * Base class for the server implementation of the service Inference.
   * <pre>
   * The inference service.
   * </pre>
   */
  public static abstract class InferenceImplBase
      implements io.grpc.BindableService, AsyncService {

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return InferenceGrpc.bindService(this);
    }
  }

  /**
   * A stub to allow clients to do asynchronous rpc calls to service Inference.
   * <pre>
   * The inference service.
   * </pre>
   */
  public static final class InferenceStub
      extends io.grpc.stub.AbstractAsyncStub<InferenceStub> {
    private InferenceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InferenceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InferenceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Prepares a model that the configuration declares (loads weights, warms up). Idempotent:
     * a ready model answers at once, and concurrent calls for one model share one setup.
     * Only declared models can be set up: NOT_FOUND otherwise. A failed setup answers
     * FAILED_PRECONDITION with the reason; calling Setup again retries it.
     * </pre>
     */
    public void setup(dev.inferd.v1.SetupRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.SetupResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getSetupMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Runs one request through the model's stages and returns its output.
     * </pre>
     */
    public void infer(dev.inferd.v1.InferRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.InferResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getInferMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Runs one request through a streaming model and sends its output piece by piece
     * (tokens, audio chunks) as the model produces them. The last message has `final` set.
     * Cancelling the call stops the model's generator.
     * </pre>
     */
    public void stream(dev.inferd.v1.InferRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.StreamResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getStreamMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists the declared models with their state and stage timings.
     * </pre>
     */
    public void listModels(dev.inferd.v1.ListModelsRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.ListModelsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListModelsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Loads a declared model: sets it up as Setup does, and also after an Unload (which Setup
     * refuses). A model that is ready is reloaded: a new instance sets up beside it and takes
     * the new requests once ready, the old one finishes its requests and is torn down; a failed
     * reload leaves the old one serving (FAILED_PRECONDITION with the reason). Only models the
     * configuration declares load: NOT_FOUND otherwise; a request never names code or files.
     * </pre>
     */
    public void load(dev.inferd.v1.LoadRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.SetupResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getLoadMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Unloads a model: its new requests are refused at once (FAILED_PRECONDITION), those in
     * flight finish, then its teardown runs and what it held is freed. Load brings it back.
     * </pre>
     */
    public void unload(dev.inferd.v1.UnloadRequest request,
        io.grpc.stub.StreamObserver<dev.inferd.v1.UnloadResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getUnloadMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * A stub to allow clients to do synchronous rpc calls to service Inference.
   * <pre>
   * The inference service.
   * </pre>
   */
  public static final class InferenceBlockingV2Stub
      extends io.grpc.stub.AbstractBlockingStub<InferenceBlockingV2Stub> {
    private InferenceBlockingV2Stub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InferenceBlockingV2Stub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InferenceBlockingV2Stub(channel, callOptions);
    }

    /**
     * <pre>
     * Prepares a model that the configuration declares (loads weights, warms up). Idempotent:
     * a ready model answers at once, and concurrent calls for one model share one setup.
     * Only declared models can be set up: NOT_FOUND otherwise. A failed setup answers
     * FAILED_PRECONDITION with the reason; calling Setup again retries it.
     * </pre>
     */
    public dev.inferd.v1.SetupResponse setup(dev.inferd.v1.SetupRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getSetupMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Runs one request through the model's stages and returns its output.
     * </pre>
     */
    public dev.inferd.v1.InferResponse infer(dev.inferd.v1.InferRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getInferMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Runs one request through a streaming model and sends its output piece by piece
     * (tokens, audio chunks) as the model produces them. The last message has `final` set.
     * Cancelling the call stops the model's generator.
     * </pre>
     */
    @io.grpc.ExperimentalApi("https://github.com/grpc/grpc-java/issues/10918")
    public io.grpc.stub.BlockingClientCall<?, dev.inferd.v1.StreamResponse>
        stream(dev.inferd.v1.InferRequest request) {
      return io.grpc.stub.ClientCalls.blockingV2ServerStreamingCall(
          getChannel(), getStreamMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the declared models with their state and stage timings.
     * </pre>
     */
    public dev.inferd.v1.ListModelsResponse listModels(dev.inferd.v1.ListModelsRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getListModelsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Loads a declared model: sets it up as Setup does, and also after an Unload (which Setup
     * refuses). A model that is ready is reloaded: a new instance sets up beside it and takes
     * the new requests once ready, the old one finishes its requests and is torn down; a failed
     * reload leaves the old one serving (FAILED_PRECONDITION with the reason). Only models the
     * configuration declares load: NOT_FOUND otherwise; a request never names code or files.
     * </pre>
     */
    public dev.inferd.v1.SetupResponse load(dev.inferd.v1.LoadRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getLoadMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Unloads a model: its new requests are refused at once (FAILED_PRECONDITION), those in
     * flight finish, then its teardown runs and what it held is freed. Load brings it back.
     * </pre>
     */
    public dev.inferd.v1.UnloadResponse unload(dev.inferd.v1.UnloadRequest request) throws io.grpc.StatusException {
      return io.grpc.stub.ClientCalls.blockingV2UnaryCall(
          getChannel(), getUnloadMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do limited synchronous rpc calls to service Inference.
   * <pre>
   * The inference service.
   * </pre>
   */
  public static final class InferenceBlockingStub
      extends io.grpc.stub.AbstractBlockingStub<InferenceBlockingStub> {
    private InferenceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InferenceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InferenceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Prepares a model that the configuration declares (loads weights, warms up). Idempotent:
     * a ready model answers at once, and concurrent calls for one model share one setup.
     * Only declared models can be set up: NOT_FOUND otherwise. A failed setup answers
     * FAILED_PRECONDITION with the reason; calling Setup again retries it.
     * </pre>
     */
    public dev.inferd.v1.SetupResponse setup(dev.inferd.v1.SetupRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getSetupMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Runs one request through the model's stages and returns its output.
     * </pre>
     */
    public dev.inferd.v1.InferResponse infer(dev.inferd.v1.InferRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getInferMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Runs one request through a streaming model and sends its output piece by piece
     * (tokens, audio chunks) as the model produces them. The last message has `final` set.
     * Cancelling the call stops the model's generator.
     * </pre>
     */
    public java.util.Iterator<dev.inferd.v1.StreamResponse> stream(
        dev.inferd.v1.InferRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getStreamMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists the declared models with their state and stage timings.
     * </pre>
     */
    public dev.inferd.v1.ListModelsResponse listModels(dev.inferd.v1.ListModelsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListModelsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Loads a declared model: sets it up as Setup does, and also after an Unload (which Setup
     * refuses). A model that is ready is reloaded: a new instance sets up beside it and takes
     * the new requests once ready, the old one finishes its requests and is torn down; a failed
     * reload leaves the old one serving (FAILED_PRECONDITION with the reason). Only models the
     * configuration declares load: NOT_FOUND otherwise; a request never names code or files.
     * </pre>
     */
    public dev.inferd.v1.SetupResponse load(dev.inferd.v1.LoadRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getLoadMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Unloads a model: its new requests are refused at once (FAILED_PRECONDITION), those in
     * flight finish, then its teardown runs and what it held is freed. Load brings it back.
     * </pre>
     */
    public dev.inferd.v1.UnloadResponse unload(dev.inferd.v1.UnloadRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getUnloadMethod(), getCallOptions(), request);
    }
  }

  /**
   * A stub to allow clients to do ListenableFuture-style rpc calls to service Inference.
   * <pre>
   * The inference service.
   * </pre>
   */
  public static final class InferenceFutureStub
      extends io.grpc.stub.AbstractFutureStub<InferenceFutureStub> {
    private InferenceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected InferenceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new InferenceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Prepares a model that the configuration declares (loads weights, warms up). Idempotent:
     * a ready model answers at once, and concurrent calls for one model share one setup.
     * Only declared models can be set up: NOT_FOUND otherwise. A failed setup answers
     * FAILED_PRECONDITION with the reason; calling Setup again retries it.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.inferd.v1.SetupResponse> setup(
        dev.inferd.v1.SetupRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getSetupMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Runs one request through the model's stages and returns its output.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.inferd.v1.InferResponse> infer(
        dev.inferd.v1.InferRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getInferMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists the declared models with their state and stage timings.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.inferd.v1.ListModelsResponse> listModels(
        dev.inferd.v1.ListModelsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListModelsMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Loads a declared model: sets it up as Setup does, and also after an Unload (which Setup
     * refuses). A model that is ready is reloaded: a new instance sets up beside it and takes
     * the new requests once ready, the old one finishes its requests and is torn down; a failed
     * reload leaves the old one serving (FAILED_PRECONDITION with the reason). Only models the
     * configuration declares load: NOT_FOUND otherwise; a request never names code or files.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.inferd.v1.SetupResponse> load(
        dev.inferd.v1.LoadRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getLoadMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Unloads a model: its new requests are refused at once (FAILED_PRECONDITION), those in
     * flight finish, then its teardown runs and what it held is freed. Load brings it back.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.inferd.v1.UnloadResponse> unload(
        dev.inferd.v1.UnloadRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getUnloadMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_SETUP = 0;
  private static final int METHODID_INFER = 1;
  private static final int METHODID_STREAM = 2;
  private static final int METHODID_LIST_MODELS = 3;
  private static final int METHODID_LOAD = 4;
  private static final int METHODID_UNLOAD = 5;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final AsyncService serviceImpl;
    private final int methodId;

    MethodHandlers(AsyncService serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_SETUP:
          serviceImpl.setup((dev.inferd.v1.SetupRequest) request,
              (io.grpc.stub.StreamObserver<dev.inferd.v1.SetupResponse>) responseObserver);
          break;
        case METHODID_INFER:
          serviceImpl.infer((dev.inferd.v1.InferRequest) request,
              (io.grpc.stub.StreamObserver<dev.inferd.v1.InferResponse>) responseObserver);
          break;
        case METHODID_STREAM:
          serviceImpl.stream((dev.inferd.v1.InferRequest) request,
              (io.grpc.stub.StreamObserver<dev.inferd.v1.StreamResponse>) responseObserver);
          break;
        case METHODID_LIST_MODELS:
          serviceImpl.listModels((dev.inferd.v1.ListModelsRequest) request,
              (io.grpc.stub.StreamObserver<dev.inferd.v1.ListModelsResponse>) responseObserver);
          break;
        case METHODID_LOAD:
          serviceImpl.load((dev.inferd.v1.LoadRequest) request,
              (io.grpc.stub.StreamObserver<dev.inferd.v1.SetupResponse>) responseObserver);
          break;
        case METHODID_UNLOAD:
          serviceImpl.unload((dev.inferd.v1.UnloadRequest) request,
              (io.grpc.stub.StreamObserver<dev.inferd.v1.UnloadResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  public static final io.grpc.ServerServiceDefinition bindService(AsyncService service) {
    return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
        .addMethod(
          getSetupMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.inferd.v1.SetupRequest,
              dev.inferd.v1.SetupResponse>(
                service, METHODID_SETUP)))
        .addMethod(
          getInferMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.inferd.v1.InferRequest,
              dev.inferd.v1.InferResponse>(
                service, METHODID_INFER)))
        .addMethod(
          getStreamMethod(),
          io.grpc.stub.ServerCalls.asyncServerStreamingCall(
            new MethodHandlers<
              dev.inferd.v1.InferRequest,
              dev.inferd.v1.StreamResponse>(
                service, METHODID_STREAM)))
        .addMethod(
          getListModelsMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.inferd.v1.ListModelsRequest,
              dev.inferd.v1.ListModelsResponse>(
                service, METHODID_LIST_MODELS)))
        .addMethod(
          getLoadMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.inferd.v1.LoadRequest,
              dev.inferd.v1.SetupResponse>(
                service, METHODID_LOAD)))
        .addMethod(
          getUnloadMethod(),
          io.grpc.stub.ServerCalls.asyncUnaryCall(
            new MethodHandlers<
              dev.inferd.v1.UnloadRequest,
              dev.inferd.v1.UnloadResponse>(
                service, METHODID_UNLOAD)))
        .build();
  }

  private static abstract class InferenceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    InferenceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.inferd.v1.InferenceProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("Inference");
    }
  }

  private static final class InferenceFileDescriptorSupplier
      extends InferenceBaseDescriptorSupplier {
    InferenceFileDescriptorSupplier() {}
  }

  private static final class InferenceMethodDescriptorSupplier
      extends InferenceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final java.lang.String methodName;

    InferenceMethodDescriptorSupplier(java.lang.String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (InferenceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new InferenceFileDescriptorSupplier())
              .addMethod(getSetupMethod())
              .addMethod(getInferMethod())
              .addMethod(getStreamMethod())
              .addMethod(getListModelsMethod())
              .addMethod(getLoadMethod())
              .addMethod(getUnloadMethod())
              .build();
        }
      }
    }
    return result;
  }
}
