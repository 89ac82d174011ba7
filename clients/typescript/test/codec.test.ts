// Unit tests of the codec, with no server: tensors of every dtype to and from the wire,
// float16, Struct conversion, payloads, results with 64-bit fields, error decoding.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { StructSchema, anyPack, DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../src/gen/google/rpc/status_pb.js";
import {
  DataType,
  InferRequestSchema,
  ModelInfoSchema,
  ModelState,
  PayloadSchema,
  StreamResponseSchema,
  TensorSchema,
  type Tensor as TensorMessage,
} from "../src/gen/inferd/v1/inference_pb.js";
import { modelInfo, streamChunk } from "../src/codec.js";
import {
  InferdBlob,
  InferdError,
  InvalidInput,
  JsonText,
  ModelNotFound,
  RecordError,
  ResourceExhausted,
  Tensor,
  TensorError,
  decodeOutput,
  decodeTensor,
  encodeInput,
  encodeTensor,
  errorFromStatus,
  float16ToNumber,
  fromStruct,
  numberToFloat16,
  statusDetails,
  toInferdError,
  toStruct,
  type DType,
  type Tensors,
} from "../src/index.js";

/** Through the wire and back: the message's own bytes, parsed again. */
function wire(message: TensorMessage): TensorMessage {
  return fromBinary(TensorSchema, toBinary(TensorSchema, message));
}

const bytes = (...values: number[]) => Uint8Array.from(values);

describe("tensors", () => {
  const cases: [DType, number[], unknown[], Uint8Array, string][] = [
    ["bool", [3], [true, false, true], bytes(1, 0, 1), "Array"],
    ["int8", [2], [-128, 127], bytes(0x80, 0x7f), "Int8Array"],
    ["uint8", [2], [0, 255], bytes(0, 255), "Uint8Array"],
    ["int16", [2], [-32768, -2], bytes(0x00, 0x80, 0xfe, 0xff), "Int16Array"],
    ["uint16", [1], [65535], bytes(0xff, 0xff), "Uint16Array"],
    ["int32", [2], [-2147483648, 1], bytes(0, 0, 0, 0x80, 1, 0, 0, 0), "Int32Array"],
    ["uint32", [1], [4294967295], bytes(0xff, 0xff, 0xff, 0xff), "Uint32Array"],
    ["int64", [2], [-1, 9007199254740991], bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0), "Array"],
    ["uint64", [1], [9007199254740991], bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0), "Array"],
    ["float16", [2], [0.5, -2], bytes(0x00, 0x38, 0x00, 0xc0), "Float32Array"],
    ["float32", [2], [1.5, -0.25], bytes(0, 0, 0xc0, 0x3f, 0, 0, 0x80, 0xbe), "Float32Array"],
    ["float64", [1], [1], bytes(0, 0, 0, 0, 0, 0, 0xf0, 0x3f), "Float64Array"],
    ["string", [3], ["a", "bé", ""], bytes(1, 0, 0, 0, 0x61, 3, 0, 0, 0, 0x62, 0xc3, 0xa9, 0, 0, 0, 0), "Array"],
  ];
  for (const [dtype, shape, values, data, kind] of cases) {
    test(`${dtype}: little-endian bytes in C order, and back as ${kind}`, () => {
      const message = encodeTensor("t", new Tensor(dtype, shape, values as ArrayLike<number>));
      assert.equal(message.name, "t");
      assert.equal(DataType[message.dtype], dtype.toUpperCase());
      assert.deepEqual(message.shape, shape.map(BigInt));
      assert.deepEqual(message.data, data);
      const back = decodeTensor(wire(message));
      assert.equal(back.dtype, dtype);
      assert.deepEqual(back.shape, shape);
      assert.equal(back.values.constructor.name, kind);
      assert.deepEqual(Array.from(back.values as ArrayLike<unknown>), values);
    });
  }

  test("typed arrays and bigints go in as they are", () => {
    const message = encodeTensor("x", new Tensor("int64", [2, 2], BigInt64Array.from([-(2n ** 63n), 0n, 1n, 2n ** 63n - 1n])));
    const view = new DataView(message.data.buffer, message.data.byteOffset);
    assert.equal(view.getBigInt64(0, true), -(2n ** 63n));
    assert.equal(view.getBigInt64(24, true), 2n ** 63n - 1n);
    const floats = decodeTensor(wire(encodeTensor("f", new Tensor("float32", [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6])))));
    assert.deepEqual(Array.from(floats.values as Float32Array), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(floats.shape, [2, 3]);
  });

  test("a scalar (shape []) holds one element, a 0-sized shape none", () => {
    const scalar = decodeTensor(wire(encodeTensor("s", new Tensor("float32", [], [7]))));
    assert.deepEqual(scalar.shape, []);
    assert.deepEqual(Array.from(scalar.values as Float32Array), [7]);
    for (const dtype of ["float32", "int64", "string", "bool", "float16"] as DType[]) {
      const empty = encodeTensor("e", new Tensor(dtype, [0, 3], []));
      assert.equal(empty.data.length, 0);
      const back = decodeTensor(wire(empty));
      assert.deepEqual(back.shape, [0, 3]);
      assert.equal(back.values.length, 0);
    }
  });

  test("an unaligned data buffer decodes (typed arrays need aligned copies)", () => {
    const buffer = new Uint8Array(9);
    new DataView(buffer.buffer).setFloat64(1, Math.PI, true);
    const message = create(TensorSchema, { name: "x", dtype: DataType.FLOAT64, shape: [1n], data: buffer.subarray(1) });
    assert.deepEqual(Array.from(decodeTensor(message).values as Float64Array), [Math.PI]);
  });

  test("elements that do not fill the shape, bad values and bad data are refused", () => {
    assert.throws(() => encodeTensor("x", new Tensor("float32", [2, 2], [1, 2, 3])), /shape \[2, 2\] holds 4 elements, got 3/);
    assert.throws(() => encodeTensor("x", new Tensor("int64", [1], [1.5])), /not an integer/);
    assert.throws(() => encodeTensor("x", new Tensor("uint64", [1], [-1])), /out of range/);
    assert.throws(() => encodeTensor("x", new Tensor("float32", [-1], [])), /bad dimension/);
    assert.throws(() => encodeTensor("x", new Tensor("string", [1], [1])), /expected a string/);
    assert.throws(() => encodeTensor("x", new Tensor("complex64" as DType, [1], [1])), /unknown dtype/);
    const short = create(TensorSchema, { name: "x", dtype: DataType.INT32, shape: [2n], data: bytes(1, 0, 0, 0) });
    assert.throws(() => decodeTensor(short), /takes 8 bytes, got 4/);
    const strings = create(TensorSchema, { name: "x", dtype: DataType.STRING, shape: [1n], data: bytes(5, 0, 0, 0, 0x61) });
    assert.throws(() => decodeTensor(strings), /ends early/);
    assert.throws(() => decodeTensor(create(TensorSchema, { name: "x", dtype: DataType.UNSPECIFIED })), /unknown dtype/);
  });
});

describe("float16", () => {
  test("every half value goes to a number and back to the same bits", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = float16ToNumber(bits);
      if (Number.isNaN(value)) {
        assert.ok(Number.isNaN(float16ToNumber(numberToFloat16(value))));
        continue;
      }
      assert.equal(numberToFloat16(value), bits, `bits 0x${bits.toString(16)} (${value})`);
    }
  });

  test("known values", () => {
    assert.equal(numberToFloat16(1), 0x3c00);
    assert.equal(numberToFloat16(-2), 0xc000);
    assert.equal(numberToFloat16(65504), 0x7bff);
    assert.equal(numberToFloat16(2 ** -24), 0x0001); // the smallest subnormal
    assert.equal(numberToFloat16(-0), 0x8000);
    assert.equal(numberToFloat16(Infinity), 0x7c00);
    assert.equal(float16ToNumber(0x7c00), Infinity);
    assert.equal(float16ToNumber(0x0400), 2 ** -14);
  });

  test("rounds to nearest, ties to even, straight from the double (as numpy does)", () => {
    assert.equal(numberToFloat16(1 + 2 ** -11), 0x3c00); // a tie: down to even
    assert.equal(numberToFloat16(1 + 3 * 2 ** -11), 0x3c02); // a tie: up to even
    assert.equal(numberToFloat16(1 + 2 ** -11 + 2 ** -40), 0x3c01); // past the tie (float32 would lose it)
    assert.equal(numberToFloat16(65519), 0x7bff);
    assert.equal(numberToFloat16(65520), 0x7c00); // overflows to Inf
    assert.equal(numberToFloat16(2 ** -25), 0x0000); // a tie between 0 and the smallest: 0
    assert.equal(numberToFloat16(2 ** -25 * 1.5), 0x0001);
    assert.equal(numberToFloat16(2 ** -14 - 2 ** -26), 0x0400); // rounds up into the normals
  });
});

describe("Struct", () => {
  test("native maps to a Struct and back; whole numbers come back as integers", () => {
    const parameters = { n: 3, f: 0.5, s: "x", b: true, l: [1, "two", null], o: { k: 1 }, big: 7n, none: null };
    const struct = fromBinary(StructSchema, toBinary(StructSchema, toStruct(parameters)));
    assert.equal(struct.fields["n"]?.kind.case, "numberValue");
    const back = fromStruct(struct);
    assert.deepEqual(back, { n: 3, f: 0.5, s: "x", b: true, l: [1, "two", null], o: { k: 1 }, big: 7, none: null });
    assert.ok(Number.isInteger(back["n"]));
    assert.deepEqual(fromStruct(toStruct(new Map<string, unknown>([["a", new Map([["b", 2]])]]))), { a: { b: 2 } });
  });

  test("a request's parameters travel as a Struct", () => {
    const request = create(InferRequestSchema, { parameters: fromStruct(toStruct({ max_new_tokens: 16, t: 0.7 })) });
    const parsed = fromBinary(InferRequestSchema, toBinary(InferRequestSchema, request));
    assert.deepEqual(parsed.parameters, { max_new_tokens: 16, t: 0.7 });
  });

  test("values JSON cannot hold are refused", () => {
    assert.throws(() => toStruct({ x: NaN }), /parameters\.x: NaN is not a finite number/);
    assert.throws(() => toStruct({ f: () => 1 }), /cannot send a function/);
  });
});

describe("payloads", () => {
  test("each input kind becomes its payload", () => {
    assert.deepEqual(encodeInput("hi").kind, { case: "text", value: "hi" });
    const exact = '[{"a": 1.50}]';
    const json = encodeInput(new JsonText(exact)).kind;
    assert.equal(json.case, "json");
    assert.equal(new TextDecoder().decode(json.value as Uint8Array), exact);
    const records = encodeInput([{ a: 1 }, { a: 2.5 }]).kind;
    assert.equal(new TextDecoder().decode(records.value as Uint8Array), '[{"a":1},{"a":2.5}]');
    assert.equal(new TextDecoder().decode(encodeInput({}).kind.value as Uint8Array), "{}");
    assert.equal(new TextDecoder().decode(encodeInput(null).kind.value as Uint8Array), "null");
    const blob = encodeInput(new InferdBlob(bytes(1, 2), "image/png")).kind;
    assert.equal(blob.case, "blob");
    assert.deepEqual([...(blob.value as { data: Uint8Array }).data], [1, 2]);
    assert.equal((blob.value as { contentType: string }).contentType, "image/png");
    assert.equal(encodeInput(bytes(3)).kind.case, "blob");
    const one = encodeInput(new Tensor("float32", [1], [1])).kind;
    assert.equal(one.case, "tensors");
    assert.deepEqual((one.value as { tensors: TensorMessage[] }).tensors.map((t) => t.name), ["input"]);
    const named = encodeInput({ a: new Tensor("int8", [1], [1]), b: new Tensor("string", [], ["x"]) }).kind;
    assert.deepEqual((named.value as { tensors: TensorMessage[] }).tensors.map((t) => t.name), ["a", "b"]);
    const map = encodeInput(new Map([["m", new Tensor("bool", [1], [true])]])).kind;
    assert.deepEqual((map.value as { tensors: TensorMessage[] }).tensors.map((t) => t.name), ["m"]);
  });

  test("each output kind comes back as its value", () => {
    const round = (input: Parameters<typeof encodeInput>[0]) => decodeOutput(fromBinary(PayloadSchema, toBinary(PayloadSchema, encodeInput(input))));
    assert.equal(round("héllo, 世界"), "héllo, 世界");
    assert.deepEqual(round({ a: [1, 2.5, null, "x", true], b: { c: -3 } }), { a: [1, 2.5, null, "x", true], b: { c: -3 } });
    const blob = round(new InferdBlob(bytes(9, 8), "application/octet-stream"));
    assert.ok(blob instanceof InferdBlob);
    assert.deepEqual([...blob.data], [9, 8]);
    const tensors = round({ label: new Tensor("int64", [1], [3]) }) as Tensors;
    assert.ok(tensors["label"] instanceof Tensor);
    assert.deepEqual(tensors["label"].values, [3]);
    assert.equal(decodeOutput(undefined), undefined);
  });
});

describe("results", () => {
  test("64-bit fields come out as numbers", () => {
    const chunk = streamChunk(create(StreamResponseSchema, { id: "s", index: 2n, final: true, timings: [{ stage: "total", ms: 1.5 }] }));
    assert.equal(chunk.index, 2);
    assert.equal(chunk.output, undefined);
    assert.deepEqual(chunk.timings, { total: 1.5 });
    const info = modelInfo(
      create(ModelInfoSchema, {
        name: "digits",
        state: ModelState.READY,
        stages: [{ stage: "run", count: 5n, meanMs: 1, lastMs: 2, maxMs: 3 }],
        batching: { maxBatchSize: 8, batches: 4n, rows: 9n, sizes: { 2: 3n }, releases: { idle: 1n } },
        requests: { OK: 12n },
        inputs: [{ name: "input", dtype: DataType.FLOAT32, shape: [-1n, 1n, 8n, 8n] }],
        outputs: [{ name: "any", anyShape: true }],
      }),
    );
    assert.equal(info.state, "READY");
    assert.deepEqual(info.stages, { run: { count: 5, meanMs: 1, lastMs: 2, maxMs: 3 } });
    assert.equal(info.batching?.batches, 4);
    assert.equal(info.batching?.rows, 9);
    assert.deepEqual(info.batching?.sizes, { 2: 3 });
    assert.deepEqual(info.requests, { OK: 12 });
    assert.deepEqual(info.inputs, [{ name: "input", dtype: "float32", shape: [null, 1, 8, 8] }]);
    assert.deepEqual(info.outputs, [{ name: "any", dtype: null, shape: null }]);
    assert.equal(modelInfo(create(ModelInfoSchema, {})).batching, null);
  });
});

describe("errors", () => {
  const status = (reason: string, metadata: Record<string, string>, domain = "inferd", retryMs?: number) =>
    toBinary(
      StatusSchema,
      create(StatusSchema, {
        code: 3,
        message: "m",
        details: [
          anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { domain, reason, metadata })),
          ...(retryMs === undefined ? [] : [anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: create(DurationSchema, { seconds: 0n, nanos: retryMs * 1e6 }) }))]),
        ],
      }),
    );

  test("grpc-status-details-bin: the class, the reason, numbers as numbers, the rest as strings", () => {
    const details = statusDetails(status("RecordError", { record: "1", path: "malic_acid", offset: "15", expected: "number" }));
    const error = errorFromStatus("INVALID_ARGUMENT", "record 1: malic_acid is missing", details);
    assert.ok(error instanceof RecordError && error instanceof InvalidInput && error instanceof InferdError && error instanceof Error);
    assert.equal(error.reason, "RecordError");
    assert.equal(error.name, "RecordError");
    assert.equal(error.code, "INVALID_ARGUMENT");
    assert.equal(error.message, "record 1: malic_acid is missing");
    assert.equal(error.record, 1);
    assert.equal(error.offset, 15);
    assert.equal(error.path, "malic_acid");
    assert.deepEqual(error.details, { record: 1, path: "malic_acid", offset: 15, expected: "number", reason: "RecordError", status: "INVALID_ARGUMENT" });
  });

  test("RetryInfo and the default retry_after_ms of ResourceExhausted", () => {
    const retry = errorFromStatus("RESOURCE_EXHAUSTED", "busy", statusDetails(status("ResourceExhausted", { model: "busy" }, "inferd", 250)));
    assert.ok(retry instanceof ResourceExhausted);
    assert.equal(retry.retryAfterMs, 250);
    assert.equal(retry.details["retry_after_ms"], 250);
    assert.equal(retry.details["model"], "busy");
    const bare = errorFromStatus("RESOURCE_EXHAUSTED", "busy");
    assert.ok(bare instanceof ResourceExhausted);
    assert.equal(bare.details["retry_after_ms"], 100);
  });

  test("a reason that is not inferd's, or does not fit the code, gives the code's class", () => {
    const foreign = errorFromStatus("INVALID_ARGUMENT", "x", statusDetails(status("TensorError", { tensor: "t" }, "example.com")));
    assert.equal(foreign.reason, "InvalidInput");
    assert.equal(foreign.details["tensor"], "t");
    assert.equal(errorFromStatus("NOT_FOUND", "x", statusDetails(status("TensorError", {}))).reason, "ModelNotFound");
    assert.equal(errorFromStatus("ABORTED", "x").reason, "InferdError");
    assert.equal(errorFromStatus("ABORTED", "").message, "ABORTED");
  });

  test("a ConnectError's details and trailers", () => {
    const failure = new ConnectError("tensor wrong: not an input", Code.InvalidArgument, { "retry-after-ms": "30", "trace-id": "abc" }, [
      { desc: ErrorInfoSchema, value: { domain: "inferd", reason: "TensorError", metadata: { tensor: "wrong" } } },
    ]);
    const error = toInferdError(failure);
    assert.ok(error instanceof TensorError);
    assert.equal(error.tensor, "wrong");
    assert.equal(error.message, "tensor wrong: not an input");
    assert.equal(error.details["trace_id"], "abc");
    assert.equal(error.details["retry_after_ms"], 30);
    const plain = toInferdError(new ConnectError("no such model", Code.NotFound));
    assert.ok(plain instanceof ModelNotFound);
    assert.equal(plain.code, "NOT_FOUND");
    assert.equal(toInferdError(new Error("boom")).code, "UNKNOWN");
  });
});
