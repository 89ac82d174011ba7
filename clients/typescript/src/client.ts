// The inferd client: a thin layer over the generated stubs and Connect's gRPC transport.

import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { createClient, type CallOptions as ConnectCallOptions, type Client as ConnectClient, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import {
  Inference,
  InferRequestSchema,
  ListModelsRequestSchema,
  LoadRequestSchema,
  SetupRequestSchema,
  UnloadRequestSchema,
  type InferRequest,
} from "./gen/inferd/v1/inference_pb.js";
import { encodeInput, fromStruct, inferResult, modelInfo, streamChunk, toStruct, type InferResult, type Input, type ModelInfo, type StreamChunk } from "./codec.js";
import { errorFromStatus, toInferdError, type InferdError } from "./errors.js";

/** Where clients connect unless told otherwise: $INFERD_ADDRESS, else this. */
export const DEFAULT_ADDRESS = "127.0.0.1:50051";

/** The largest answer a client takes by default: 64 MiB, the most the server sends. */
export const DEFAULT_MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/** PEM text or bytes, or the path of a PEM file. */
export type Pem = string | Uint8Array;

/** How a client connects over TLS. */
export interface TlsOptions {
  /** The CA certificate(s) that signed the server's certificate; the system's roots when absent. */
  ca?: Pem;
  /** The client's own certificate and key, for a server that requires mutual TLS. */
  cert?: Pem;
  key?: Pem;
  /** The name to check the server's certificate against, when it is not the address's host. */
  serverName?: string;
}

export interface ClientOptions {
  /** Sent as `authorization: Bearer <token>` on every call but health checks. */
  token?: string;
  /** The default deadline of every call, in milliseconds (none when absent). */
  timeoutMs?: number;
  /** The largest message the client receives (default 64 MiB). */
  maxReceiveBytes?: number;
  /** The largest message the client sends (default 64 MiB). */
  maxSendBytes?: number;
  /** TLS options, true (TLS with the system's roots), false (plaintext), or absent: as
   * INFERD_TLS_CA, INFERD_TLS_CLIENT_CERT, INFERD_TLS_CLIENT_KEY, INFERD_TLS_SERVER_NAME
   * and INFERD_TLS=1 say (plaintext when none is set). */
  tls?: TlsOptions | boolean;
}

export interface CallOptions {
  /** This call's deadline in milliseconds (the client's default when absent). */
  timeoutMs?: number;
  /** Aborting it cancels the call. */
  signal?: AbortSignal;
}

export interface RequestOptions extends CallOptions {
  /** The model's per-request parameters, sent as a google.protobuf.Struct. */
  parameters?: Record<string, unknown> | Map<string, unknown>;
  /** The caller's id for the request, echoed in the answer. */
  id?: string;
}

/** TLS as the INFERD_TLS_* variables say, or undefined (plaintext). */
export function tlsFromEnvironment(env: NodeJS.ProcessEnv = process.env): TlsOptions | undefined {
  const options: TlsOptions = {};
  if (env["INFERD_TLS_CA"]) options.ca = env["INFERD_TLS_CA"];
  if (env["INFERD_TLS_CLIENT_CERT"]) options.cert = env["INFERD_TLS_CLIENT_CERT"];
  if (env["INFERD_TLS_CLIENT_KEY"]) options.key = env["INFERD_TLS_CLIENT_KEY"];
  if (env["INFERD_TLS_SERVER_NAME"]) options.serverName = env["INFERD_TLS_SERVER_NAME"];
  if (Object.keys(options).length === 0 && !["1", "true", "yes"].includes((env["INFERD_TLS"] ?? "").toLowerCase())) return undefined;
  return options;
}

function pem(value: Pem | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") return Buffer.from(value);
  return value.includes("-----BEGIN") ? Buffer.from(value) : readFileSync(value);
}

/** A client of one inferd server. Call close() when done with it. */
export class Client {
  readonly address: string;
  private readonly sessions: Http2SessionManager;
  private readonly transport: Transport;
  private readonly inference: ConnectClient<typeof Inference>;
  private readonly healthClient: ConnectClient<typeof Health>;
  private readonly token: string | undefined;
  private readonly timeoutMs: number | undefined;

  /** `address` is host:port (default $INFERD_ADDRESS, else 127.0.0.1:50051). */
  constructor(address?: string, options: ClientOptions = {}) {
    this.address = address || process.env["INFERD_ADDRESS"] || DEFAULT_ADDRESS;
    const tls = options.tls === undefined ? tlsFromEnvironment() : options.tls === true ? {} : options.tls || undefined;
    if (tls && (tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError("TLS: give both cert and key (mutual TLS), or neither");
    const hostPort = this.address.replace(/^[a-z]+:\/\//, "");
    const baseUrl = `${tls ? "https" : "http"}://${hostPort}`;
    const nodeOptions = tls
      ? { ca: pem(tls.ca), cert: pem(tls.cert), key: pem(tls.key), ...(tls.serverName ? { servername: tls.serverName } : {}) }
      : {};
    this.sessions = new Http2SessionManager(baseUrl, {}, nodeOptions);
    const limit = options.maxReceiveBytes ?? DEFAULT_MAX_RECEIVE_BYTES;
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.sessions,
      readMaxBytes: limit,
      writeMaxBytes: options.maxSendBytes ?? DEFAULT_MAX_RECEIVE_BYTES,
    });
    this.inference = createClient(Inference, this.transport);
    this.healthClient = createClient(Health, this.transport);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs;
  }

  private closed = false;

  /** Closes the connection; calls in flight fail. */
  close(): void {
    this.closed = true;
    this.sessions.abort();
  }

  /** The inferd error for a failed call. A call that the caller did not cancel, cut off by
   * the connection going down (Node closes its streams with CANCEL then: a TLS server reached
   * in plaintext, a server gone), is UNAVAILABLE, as gRPC's own clients report it. */
  private failure(failure: unknown, signal?: AbortSignal): InferdError {
    const error = toInferdError(failure);
    const state = this.sessions.state();
    if (error.code === "CANCELLED" && !signal?.aborted && !this.closed && (state === "closed" || state === "error")) {
      return errorFromStatus("UNAVAILABLE", `connection to ${this.address} closed before the call completed (${error.message})`);
    }
    return error;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private options(options: CallOptions, authenticated = true): ConnectCallOptions {
    const result: ConnectCallOptions = {};
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    if (timeoutMs !== undefined) result.timeoutMs = timeoutMs;
    if (options.signal) result.signal = options.signal;
    if (authenticated && this.token) result.headers = { authorization: `Bearer ${this.token}` };
    return result;
  }

  private request(model: string, input: Input, options: RequestOptions): InferRequest {
    return create(InferRequestSchema, {
      model,
      id: options.id ?? "",
      input: encodeInput(input),
      parameters: fromStruct(toStruct(options.parameters ?? {})), // checked and made JSON-safe
    });
  }

  /** Runs one request through `model` and returns its answer (see Input for how `input` is sent). */
  async infer(model: string, input: Input, options: RequestOptions = {}): Promise<InferResult> {
    const request = this.request(model, input, options);
    try {
      return inferResult(await this.inference.infer(request, this.options(options)));
    } catch (failure) {
      throw this.failure(failure, options.signal);
    }
  }

  /** Streams `model`'s answer chunk by chunk. Leaving the loop early (break, return, a throw)
   * or aborting `signal` cancels the call. */
  async *stream(model: string, input: Input, options: RequestOptions = {}): AsyncGenerator<StreamChunk, void, undefined> {
    const request = this.request(model, input, options);
    const controller = new AbortController();
    const abort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) abort();
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      const responses = this.inference.stream(request, { ...this.options(options), signal: controller.signal });
      try {
        for await (const response of responses) {
          yield streamChunk(response);
        }
      } catch (failure) {
        throw this.failure(failure, options.signal);
      }
    } finally {
      options.signal?.removeEventListener("abort", abort);
      controller.abort(); // a no-op when the stream has ended
    }
  }

  /** Sets `model` up (idempotent); returns its setup time in milliseconds. */
  async setup(model: string, options: CallOptions = {}): Promise<number> {
    try {
      return (await this.inference.setup(create(SetupRequestSchema, { model }), this.options(options))).setupMs;
    } catch (failure) {
      throw this.failure(failure, options.signal);
    }
  }

  /** Loads a declared model (also after unload); returns its setup time in milliseconds. */
  async load(model: string, options: CallOptions = {}): Promise<number> {
    try {
      return (await this.inference.load(create(LoadRequestSchema, { model }), this.options(options))).setupMs;
    } catch (failure) {
      throw this.failure(failure, options.signal);
    }
  }

  /** Unloads a model once its requests in flight have finished; it refuses new ones. */
  async unload(model: string, options: CallOptions = {}): Promise<void> {
    try {
      await this.inference.unload(create(UnloadRequestSchema, { model }), this.options(options));
    } catch (failure) {
      throw this.failure(failure, options.signal);
    }
  }

  /** The server's models, with their states and statistics. */
  async models(options: CallOptions = {}): Promise<ModelInfo[]> {
    try {
      const response = await this.inference.listModels(create(ListModelsRequestSchema, {}), this.options(options));
      return response.models.map(modelInfo);
    } catch (failure) {
      throw this.failure(failure, options.signal);
    }
  }

  /** The gRPC health status ("SERVING", "NOT_SERVING", ...) of the server (service "") or of
   * a model (its name). Sends no token. */
  async health(service = "", options: CallOptions = {}): Promise<string> {
    try {
      const response = await this.healthClient.check(create(HealthCheckRequestSchema, { service }), this.options(options, false));
      return HealthCheckResponse_ServingStatus[response.status] ?? String(response.status);
    } catch (failure) {
      throw this.failure(failure, options.signal);
    }
  }
}
