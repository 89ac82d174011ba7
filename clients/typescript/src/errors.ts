// inferd's errors, rebuilt on the client from a failed call's status: the gRPC code, the
// message, and the google.rpc.ErrorInfo (and RetryInfo) of grpc-status-details-bin.

import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";

/** gRPC status codes by number (Connect's codes are the same numbers). */
export const STATUS_CODES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A gRPC status code's name ("INVALID_ARGUMENT", ...). */
export type StatusCode = (typeof STATUS_CODES)[number];

/** The ErrorInfo metadata that are numbers; the rest stay strings. */
const INTEGER_DETAILS = ["record", "offset", "retry_after_ms"];

/** Every failed call throws an InferdError (or a subclass named as the server's error class:
 * RecordError, ModelNotFound, ...). `reason` is that class's name, `code` the gRPC status
 * code's name, `details` the ErrorInfo's metadata (record, offset and retry_after_ms as
 * numbers), plus `reason` and `status`. */
export class InferdError extends Error {
  /** The gRPC status code this class stands for (the base: any). */
  static readonly statusCode: StatusCode = "UNKNOWN";
  readonly code: StatusCode;
  readonly details: Record<string, string | number>;

  constructor(message: string, code: StatusCode = "UNKNOWN", details: Record<string, string | number> = {}) {
    super(message);
    this.code = code;
    this.details = details;
    this.name = new.target.name;
  }

  /** The error class: the ErrorInfo's reason where the server sent a known one, else the
   * class of the status code. */
  get reason(): string {
    return this.constructor.name;
  }
}

/** The request is malformed: bad JSON, a missing or ill-typed field, a bad parameter. */
export class InvalidInput extends InferdError {
  static override readonly statusCode: StatusCode = "INVALID_ARGUMENT";
}
/** A record does not fit the model's schema; details: record, path, expected, value, offset. */
export class RecordError extends InvalidInput {
  get record(): number | undefined {
    return numberDetail(this.details["record"]);
  }
  get path(): string | undefined {
    return stringDetail(this.details["path"]);
  }
  get offset(): number | undefined {
    return numberDetail(this.details["offset"]);
  }
}
/** A request tensor has the wrong name, dtype or shape; details: tensor. */
export class TensorError extends InvalidInput {
  get tensor(): string {
    return stringDetail(this.details["tensor"]) ?? "";
  }
}
/** No model of that name is declared. */
export class ModelNotFound extends InferdError {
  static override readonly statusCode: StatusCode = "NOT_FOUND";
}
/** The model cannot serve yet (never set up, or unloaded). */
export class ModelNotReady extends InferdError {
  static override readonly statusCode: StatusCode = "FAILED_PRECONDITION";
}
/** The model's setup failed; details.reason says why. */
export class ModelFailed extends ModelNotReady {}
/** Too many requests in flight or queued; retry after retryAfterMs. */
export class ResourceExhausted extends InferdError {
  static override readonly statusCode: StatusCode = "RESOURCE_EXHAUSTED";
  get retryAfterMs(): number {
    return numberDetail(this.details["retry_after_ms"]) ?? 100;
  }
}
/** The deadline passed before the answer came. */
export class DeadlineExceeded extends InferdError {
  static override readonly statusCode: StatusCode = "DEADLINE_EXCEEDED";
}
/** The call was cancelled. */
export class Cancelled extends InferdError {
  static override readonly statusCode: StatusCode = "CANCELLED";
}
/** The caller did not prove who it is (no token, or a wrong one). */
export class Unauthenticated extends InferdError {
  static override readonly statusCode: StatusCode = "UNAUTHENTICATED";
}
/** The caller's token does not allow this. */
export class PermissionDenied extends InferdError {
  static override readonly statusCode: StatusCode = "PERMISSION_DENIED";
}
/** The server, or a service the model depends on, cannot be reached; retrying may help. */
export class Unavailable extends InferdError {
  static override readonly statusCode: StatusCode = "UNAVAILABLE";
}
/** The model does not offer this call (Stream on a unary model, ...). */
export class Unimplemented extends InferdError {
  static override readonly statusCode: StatusCode = "UNIMPLEMENTED";
}
/** The model or the server failed; the message is generic on purpose. */
export class InternalError extends InferdError {
  static override readonly statusCode: StatusCode = "INTERNAL";
}

type ErrorClass = typeof InferdError;

const CLASSES: ErrorClass[] = [
  InvalidInput,
  RecordError,
  TensorError,
  ModelNotFound,
  ModelNotReady,
  ModelFailed,
  ResourceExhausted,
  DeadlineExceeded,
  Cancelled,
  Unauthenticated,
  PermissionDenied,
  Unavailable,
  Unimplemented,
  InternalError,
];
const BY_NAME = new Map<string, ErrorClass>(CLASSES.map((cls) => [cls.name, cls]));
const BY_CODE = new Map<string, ErrorClass>(
  [InvalidInput, ModelNotFound, ModelNotReady, ResourceExhausted, DeadlineExceeded, Cancelled, Unauthenticated, PermissionDenied, Unavailable, Unimplemented, InternalError].map(
    (cls) => [cls.statusCode, cls],
  ),
);

function numberDetail(value: string | number | undefined): number | undefined {
  return typeof value === "number" ? value : undefined;
}
function stringDetail(value: string | number | undefined): string | undefined {
  return value === undefined ? undefined : String(value);
}

/** The error class for a status: the one `name` (ErrorInfo.reason) names where it is one of
 * inferd's with that code, else the code's own class (InferdError when none). */
export function errorClass(code: StatusCode, name = ""): ErrorClass {
  const named = BY_NAME.get(name);
  if (named && named.statusCode === code) return named;
  return BY_CODE.get(code) ?? InferdError;
}

/** The ErrorInfo and RetryInfo of a status, as the error's details. */
export interface StatusDetails {
  /** ErrorInfo.reason when its domain is "inferd" (the server's error class). */
  name: string;
  /** The ErrorInfo's metadata, its reason, and retry_after_ms from a RetryInfo. */
  metadata: Record<string, string>;
}

type Detail = { desc: DescMessage; value: MessageShape<DescMessage> };

function collect(details: Iterable<Detail>): StatusDetails {
  const result: StatusDetails = { name: "", metadata: {} };
  for (const { desc, value } of details) {
    if (desc.typeName === ErrorInfoSchema.typeName) {
      const info = value as MessageShape<typeof ErrorInfoSchema>;
      Object.assign(result.metadata, info.metadata);
      if (info.domain === "inferd") result.name = info.reason;
      result.metadata["reason"] ??= info.reason;
    } else if (desc.typeName === RetryInfoSchema.typeName) {
      const info = value as MessageShape<typeof RetryInfoSchema>;
      const delay = info.retryDelay;
      if (delay && result.metadata["retry_after_ms"] === undefined) {
        result.metadata["retry_after_ms"] = String(Math.round(Number(delay.seconds) * 1000 + delay.nanos / 1e6));
      }
    }
  }
  return result;
}

/** The ErrorInfo and RetryInfo in the bytes of a grpc-status-details-bin trailer (a
 * google.rpc.Status). */
export function statusDetails(bytes: Uint8Array): StatusDetails {
  const status = fromBinary(StatusSchema, bytes);
  const details: Detail[] = [];
  for (const any of status.details) {
    for (const schema of [ErrorInfoSchema, RetryInfoSchema] as DescMessage[]) {
      const value = anyUnpack(any, schema);
      if (value) details.push({ desc: schema, value });
    }
  }
  return collect(details);
}

/** The inferd error for a status: its class, message and typed details. */
export function errorFromStatus(code: StatusCode, message: string, details: StatusDetails = { name: "", metadata: {} }): InferdError {
  const typed: Record<string, string | number> = { ...details.metadata };
  for (const key of INTEGER_DETAILS) {
    const value = typed[key];
    if (typeof value === "string" && /^-?\d+$/.test(value.trim())) typed[key] = Number.parseInt(value, 10);
  }
  const cls = errorClass(code, details.name);
  if (cls === ResourceExhausted && typeof typed["retry_after_ms"] !== "number") typed["retry_after_ms"] = 100;
  typed["status"] = code;
  return new cls(message || code, code, typed);
}

/** The inferd error for whatever a call threw (a ConnectError, an abort, ...); an
 * InferdError as it is. */
export function toInferdError(failure: unknown): InferdError {
  if (failure instanceof InferdError) return failure;
  const error = ConnectError.from(failure);
  const code = STATUS_CODES[error.code] ?? "UNKNOWN";
  const details = collect(
    [ErrorInfoSchema, RetryInfoSchema].flatMap((schema) =>
      (error.findDetails(schema as DescMessage) as MessageShape<DescMessage>[]).map((value) => ({ desc: schema as DescMessage, value })),
    ),
  );
  const trace = error.metadata.get("trace-id");
  if (trace) details.metadata["trace_id"] = trace;
  const retry = error.metadata.get("retry-after-ms");
  if (retry) details.metadata["retry_after_ms"] = retry;
  const result = errorFromStatus(code, error.rawMessage, details);
  if (error.cause !== undefined) (result as { cause?: unknown }).cause = error.cause;
  return result;
}
