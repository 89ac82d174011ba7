// What the client sends and receives: TypeScript values <-> inferd.v1's messages.

import { create } from "@bufbuild/protobuf";
import { NullValue, StructSchema, ValueSchema, type Struct, type Value } from "@bufbuild/protobuf/wkt";
import {
  BlobSchema,
  ModelState,
  PayloadSchema,
  TensorsSchema,
  type BatchingStats as BatchingStatsMessage,
  type InferResponse,
  type ModelInfo as ModelInfoMessage,
  type Payload,
  type StageTiming,
  type StreamResponse,
  type TensorInfo as TensorInfoMessage,
} from "./gen/inferd/v1/inference_pb.js";
import { Tensor, decodeTensor, dtypeName, encodeTensor, type DType, type TensorInputValues } from "./tensor.js";

/** A JSON value as JSON.parse gives it (and as a request's records or parameters are given). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** UTF-8 JSON to send exactly as given (no parsing and re-encoding on the client). */
export class JsonText {
  readonly bytes: Uint8Array;
  constructor(text: string | Uint8Array) {
    this.bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  }
  toString(): string {
    return new TextDecoder().decode(this.bytes);
  }
}

/** Opaque binary content (an image, audio) and its media type ("" when unknown). */
export class InferdBlob {
  constructor(
    readonly data: Uint8Array,
    readonly contentType: string = "",
  ) {}
}

/** Named tensors, in order: a request's inputs, or a response's outputs. */
export type Tensors = Record<string, Tensor>;

/**
 * What a request carries in, by its type:
 * - a `string`: text;
 * - a `JsonText`: JSON exactly as given;
 * - an `InferdBlob` or a `Uint8Array`: a blob;
 * - a `Tensor` (sent as the tensor "input"), or an object or Map whose values are all
 *   Tensors: tensors;
 * - anything else (records, any JSON value): JSON, as JSON.stringify writes it.
 */
export type Input =
  | string
  | JsonText
  | InferdBlob
  | Uint8Array
  | Tensor<TensorInputValues>
  | Record<string, Tensor<TensorInputValues>>
  | Map<string, Tensor<TensorInputValues>>
  | JsonValue
  | object;

/** What a response carries out: JSON (its value), text, an InferdBlob or Tensors; undefined
 * when the message has no output. */
export type Output = JsonValue | string | InferdBlob | Tensors | undefined;

function isTensorMap(value: object): value is Record<string, Tensor<TensorInputValues>> {
  const values = value instanceof Map ? [...value.values()] : Object.values(value);
  return values.length > 0 && values.every((item) => item instanceof Tensor);
}

/** An input as a request's payload (see Input for the rules). */
export function encodeInput(input: Input): Payload {
  if (typeof input === "string") return create(PayloadSchema, { kind: { case: "text", value: input } });
  if (input instanceof JsonText) return create(PayloadSchema, { kind: { case: "json", value: input.bytes } });
  if (input instanceof InferdBlob) {
    const blob = create(BlobSchema, { data: input.data, contentType: input.contentType });
    return create(PayloadSchema, { kind: { case: "blob", value: blob } });
  }
  if (input instanceof Uint8Array) {
    return create(PayloadSchema, { kind: { case: "blob", value: create(BlobSchema, { data: input }) } });
  }
  if (input instanceof Tensor) input = { input };
  if (input !== null && typeof input === "object" && !Array.isArray(input) && isTensorMap(input)) {
    const entries = input instanceof Map ? [...input.entries()] : Object.entries(input);
    const tensors = entries.map(([name, tensor]) => encodeTensor(name, tensor as Tensor<TensorInputValues>));
    return create(PayloadSchema, { kind: { case: "tensors", value: create(TensorsSchema, { tensors }) } });
  }
  const text = JSON.stringify(input);
  if (text === undefined) throw new TypeError(`cannot send ${typeof input} as JSON`);
  return create(PayloadSchema, { kind: { case: "json", value: new TextEncoder().encode(text) } });
}

/** A response's payload as a TypeScript value (see Output). */
export function decodeOutput(payload: Payload | undefined): Output {
  const kind = payload?.kind;
  switch (kind?.case) {
    case "json":
      return JSON.parse(new TextDecoder().decode(kind.value)) as JsonValue;
    case "text":
      return kind.value;
    case "blob":
      return new InferdBlob(kind.value.data, kind.value.contentType);
    case "tensors": {
      const tensors: Tensors = {};
      for (const tensor of kind.value.tensors) tensors[tensor.name] = decodeTensor(tensor);
      return tensors;
    }
    default:
      return undefined;
  }
}

// -- Struct --------------------------------------------------------------------------------

/** A native value as a google.protobuf.Value (numbers as doubles: whole ones come back whole). */
export function toValue(value: unknown, where = "parameters"): Value {
  if (value === null || value === undefined) return create(ValueSchema, { kind: { case: "nullValue", value: NullValue.NULL_VALUE } });
  if (typeof value === "boolean") return create(ValueSchema, { kind: { case: "boolValue", value } });
  if (typeof value === "number" || typeof value === "bigint") {
    const number = Number(value);
    if (!Number.isFinite(number)) throw new RangeError(`${where}: ${value} is not a finite number`);
    return create(ValueSchema, { kind: { case: "numberValue", value: number } });
  }
  if (typeof value === "string") return create(ValueSchema, { kind: { case: "stringValue", value } });
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    const values = Array.from(value as ArrayLike<unknown>, (item, i) => toValue(item, `${where}[${i}]`));
    return create(ValueSchema, { kind: { case: "listValue", value: { values } } });
  }
  if (typeof value === "object") return create(ValueSchema, { kind: { case: "structValue", value: toStruct(value as Record<string, unknown>, where) } });
  throw new TypeError(`${where}: cannot send a ${typeof value}`);
}

/** A native object (or Map) as a google.protobuf.Struct. */
export function toStruct(object: Record<string, unknown> | Map<string, unknown>, where = "parameters"): Struct {
  const fields: Record<string, Value> = {};
  const entries = object instanceof Map ? [...object.entries()] : Object.entries(object);
  for (const [key, value] of entries) fields[key] = toValue(value, `${where}.${key}`);
  return create(StructSchema, { fields });
}

/** A google.protobuf.Value as a native value (a whole number is an ordinary integer). */
export function fromValue(value: Value | undefined): JsonValue {
  const kind = value?.kind;
  switch (kind?.case) {
    case "boolValue":
    case "stringValue":
    case "numberValue":
      return kind.value;
    case "listValue":
      return kind.value.values.map(fromValue);
    case "structValue":
      return fromStruct(kind.value);
    default:
      return null;
  }
}

/** A google.protobuf.Struct as a native object ({} when unset). */
export function fromStruct(struct: Struct | undefined): { [key: string]: JsonValue } {
  const object: { [key: string]: JsonValue } = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) object[key] = fromValue(value);
  return object;
}

// -- results -------------------------------------------------------------------------------

/** The answer to one infer call. */
export interface InferResult {
  model: string;
  /** The request's id, echoed. */
  id: string;
  output: Output;
  /** Metadata the model reported about its output (e.g. sample_rate). */
  parameters: { [key: string]: JsonValue };
  /** Milliseconds per stage, in the order they ran, ending with "total". */
  timings: Record<string, number>;
}

/** One message of a stream; the last has `final` set and carries the timings. */
export interface StreamChunk {
  model: string;
  id: string;
  /** Its position in the stream, from 0. */
  index: number;
  /** The chunk's output; undefined on a final message with nothing more to send. */
  output: Output;
  parameters: { [key: string]: JsonValue };
  final: boolean;
  timings: Record<string, number>;
}

/** A tensor a model declares: dtype null for any dtype; shape null for any shape, and null
 * along an axis that takes any size. */
export interface TensorInfo {
  name: string;
  dtype: DType | null;
  shape: (number | null)[] | null;
}

/** What a model's dynamic batcher did since the server started (every count a number). */
export interface BatchingStats {
  maxBatchSize: number;
  maxDelayMs: number;
  batches: number;
  rows: number;
  /** Batch size (rows) -> how many batches had it. */
  sizes: Record<number, number>;
  /** Why batches were released -> how many. */
  releases: Record<string, number>;
  dropped: number;
  refused: number;
  meanQueueMs: number;
  maxQueueMs: number;
  waiting: number;
  running: number;
}

/** A model's state: "DECLARED", "LOADING", "READY", "FAILED" (or "UNSPECIFIED"). */
export type ModelStateName = "UNSPECIFIED" | "DECLARED" | "LOADING" | "READY" | "FAILED";

/** What the server reports about one model (ListModels). */
export interface ModelInfo {
  name: string;
  workflow: string;
  state: ModelStateName;
  /** Why it failed, when state is FAILED. */
  reason: string;
  inputFormat: string;
  streaming: boolean;
  unary: boolean;
  setupMode: string;
  description: string;
  /** stage -> its statistics since the server started. */
  stages: Record<string, { count: number; meanMs: number; lastMs: number; maxMs: number }>;
  /** The batcher's statistics; null when batching is off. */
  batching: BatchingStats | null;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /** Calls naming the model, by final status code ("OK", "CANCELLED", ...). */
  requests: Record<string, number>;
  /** A graph's nodes. */
  nodes: { name: string; kind: string; target: string; inputs: string[]; map: boolean; streams: boolean; onError: string; cases: Record<string, string> }[];
}

function timings(list: StageTiming[]): Record<string, number> {
  return Object.fromEntries(list.map((timing) => [timing.stage, timing.ms]));
}

function numbers<K extends string | number>(map: { [key: string]: bigint }): Record<K, number> {
  return Object.fromEntries(Object.entries(map).map(([key, value]) => [key, Number(value)])) as Record<K, number>;
}

export function inferResult(response: InferResponse): InferResult {
  return {
    model: response.model,
    id: response.id,
    output: decodeOutput(response.output),
    parameters: (response.parameters ?? {}) as { [key: string]: JsonValue },
    timings: timings(response.timings),
  };
}

export function streamChunk(response: StreamResponse): StreamChunk {
  return {
    model: response.model,
    id: response.id,
    index: Number(response.index),
    output: response.output ? decodeOutput(response.output) : undefined,
    parameters: (response.parameters ?? {}) as { [key: string]: JsonValue },
    final: response.final,
    timings: timings(response.timings),
  };
}

function tensorInfo(tensor: TensorInfoMessage): TensorInfo {
  return {
    name: tensor.name,
    dtype: dtypeName(tensor.dtype) ?? null,
    shape: tensor.anyShape ? null : tensor.shape.map((size) => (size < 0n ? null : Number(size))),
  };
}

function batchingStats(stats: BatchingStatsMessage): BatchingStats {
  return {
    maxBatchSize: stats.maxBatchSize,
    maxDelayMs: stats.maxDelayMs,
    batches: Number(stats.batches),
    rows: Number(stats.rows),
    sizes: numbers<number>(stats.sizes),
    releases: numbers<string>(stats.releases),
    dropped: Number(stats.dropped),
    refused: Number(stats.refused),
    meanQueueMs: stats.meanQueueMs,
    maxQueueMs: stats.maxQueueMs,
    waiting: Number(stats.waiting),
    running: Number(stats.running),
  };
}

export function stateName(state: ModelState): ModelStateName {
  const name = ModelState[state];
  return (name === undefined ? "UNSPECIFIED" : name) as ModelStateName;
}

export function modelInfo(info: ModelInfoMessage): ModelInfo {
  return {
    name: info.name,
    workflow: info.workflow,
    state: stateName(info.state),
    reason: info.reason,
    inputFormat: info.inputFormat,
    streaming: info.streaming,
    unary: info.unary,
    setupMode: info.setupMode,
    description: info.description,
    stages: Object.fromEntries(
      info.stages.map((stage) => [stage.stage, { count: Number(stage.count), meanMs: stage.meanMs, lastMs: stage.lastMs, maxMs: stage.maxMs }]),
    ),
    batching: info.batching ? batchingStats(info.batching) : null,
    inputs: info.inputs.map(tensorInfo),
    outputs: info.outputs.map(tensorInfo),
    requests: numbers<string>(info.requests),
    nodes: info.nodes.map((node) => ({
      name: node.name,
      kind: node.kind,
      target: node.target,
      inputs: [...node.inputs],
      map: node.map,
      streams: node.streams,
      onError: node.onError,
      cases: { ...node.cases },
    })),
  };
}
