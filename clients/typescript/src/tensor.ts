// Tensors: the language's arrays <-> inferd.v1.Tensor (little-endian bytes in C order).

import { create } from "@bufbuild/protobuf";
import { DataType, TensorSchema, type Tensor as TensorMessage } from "./gen/inferd/v1/inference_pb.js";

/** A tensor's element type; names follow numpy's. */
export type DType =
  | "bool"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "float16"
  | "float32"
  | "float64"
  | "string";

/** The array each dtype decodes to. 64-bit integers come back as ordinary numbers (exact up
 * to 2^53), float16 as a Float32Array (every half value is exact in single precision). */
export type TensorValues =
  | boolean[]
  | Int8Array
  | Int16Array
  | Int32Array
  | number[]
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | string[];

/** What a Tensor accepts as its elements: any array-like of numbers (bigints too, for the
 * 64-bit dtypes), booleans or strings, flat, in C order. */
export type TensorInputValues = ArrayLike<number | bigint | boolean | string>;

/** A dense tensor: dtype, shape ([] for a scalar, 0-sized dimensions allowed) and its
 * elements, flat in C (row-major) order. */
export class Tensor<V extends TensorInputValues = TensorValues> {
  constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly values: V,
  ) {}

  /** The number of elements the shape holds (1 for a scalar). */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
}

const DTYPES: Record<DType, DataType> = {
  bool: DataType.BOOL,
  int8: DataType.INT8,
  int16: DataType.INT16,
  int32: DataType.INT32,
  int64: DataType.INT64,
  uint8: DataType.UINT8,
  uint16: DataType.UINT16,
  uint32: DataType.UINT32,
  uint64: DataType.UINT64,
  float16: DataType.FLOAT16,
  float32: DataType.FLOAT32,
  float64: DataType.FLOAT64,
  string: DataType.STRING,
};

const NAMES = new Map<DataType, DType>(Object.entries(DTYPES).map(([name, value]) => [value, name as DType]));

const ITEMSIZE: Record<Exclude<DType, "string">, number> = {
  bool: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
};

/** The dtype's wire enum value. */
export function dataType(dtype: DType): DataType {
  const value = DTYPES[dtype];
  if (value === undefined) throw new TypeError(`unknown dtype ${JSON.stringify(dtype)}`);
  return value;
}

/** The dtype's name for a wire enum value, or undefined (DATA_TYPE_UNSPECIFIED, unknown). */
export function dtypeName(value: DataType): DType | undefined {
  return NAMES.get(value);
}

// -- float16 -------------------------------------------------------------------------------

const f64 = new Float64Array(1);
const f64bits = new Uint32Array(f64.buffer);
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** IEEE 754 half precision bits -> number. */
export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** x rounded to the nearest integer, ties to even (x >= 0; every step here is exact). */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** number -> IEEE 754 half precision bits, rounded to nearest even straight from the double
 * (as numpy's float64 -> float16 does). */
export function numberToFloat16(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a >= 65520) return sign | 0x7c00; // past the largest half (65504) by half a step: Inf
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (may round up to the smallest normal: right)
  f64[0] = a;
  const exponent = ((f64bits[HIGH]! >>> 20) & 0x7ff) - 1023; // a is a normal double here
  let mantissa = roundHalfEven((a / 2 ** exponent - 1) * 1024);
  let e = exponent + 15;
  if (mantissa === 1024) {
    mantissa = 0;
    e += 1;
  }
  if (e >= 0x1f) return sign | 0x7c00;
  return sign | (e << 10) | mantissa;
}

// -- encoding ------------------------------------------------------------------------------

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function toNumber(value: number | bigint | boolean | string, where: string): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint" || typeof value === "boolean") return Number(value);
  throw new TypeError(`${where}: expected a number, got ${typeof value}`);
}

function toBigInt(value: number | bigint | boolean | string, where: string, unsigned: boolean): bigint {
  let result: bigint;
  if (typeof value === "bigint") result = value;
  else if (typeof value === "boolean") result = value ? 1n : 0n;
  else if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new RangeError(`${where}: ${value} is not an integer`);
    result = BigInt(value);
  } else throw new TypeError(`${where}: expected an integer, got ${typeof value}`);
  const [low, high] = unsigned ? [0n, 2n ** 64n - 1n] : [-(2n ** 63n), 2n ** 63n - 1n];
  if (result < low || result > high) throw new RangeError(`${where}: ${result} is out of range`);
  return result;
}

/** A Tensor as the wire's message, named `name`. Checks that the elements fill the shape. */
export function encodeTensor(name: string, tensor: Tensor<TensorInputValues>): TensorMessage {
  const { dtype, values } = tensor;
  const shape = tensor.shape.map((size) => {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`tensor ${name}: bad dimension ${size}`);
    return size;
  });
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new RangeError(`tensor ${name}: shape [${shape.join(", ")}] holds ${count} elements, got ${values.length}`);
  }
  const where = `tensor ${name}`;
  let data: Uint8Array;
  if (dtype === "string") {
    const encoder = new TextEncoder();
    const parts = Array.from(values, (value) => {
      if (typeof value !== "string") throw new TypeError(`${where}: expected a string, got ${typeof value}`);
      return encoder.encode(value);
    });
    data = new Uint8Array(parts.reduce((total, part) => total + 4 + part.length, 0));
    const view = new DataView(data.buffer);
    let at = 0;
    for (const part of parts) {
      view.setUint32(at, part.length, true);
      data.set(part, at + 4);
      at += 4 + part.length;
    }
  } else {
    const itemsize = ITEMSIZE[dtype];
    if (itemsize === undefined) throw new TypeError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    data = new Uint8Array(count * itemsize);
    const view = new DataView(data.buffer);
    for (let i = 0; i < count; i++) {
      const value = values[i]!;
      const at = i * itemsize;
      switch (dtype) {
        case "bool":
          view.setUint8(at, value ? 1 : 0);
          break;
        case "int8":
          view.setInt8(at, toNumber(value, where));
          break;
        case "uint8":
          view.setUint8(at, toNumber(value, where));
          break;
        case "int16":
          view.setInt16(at, toNumber(value, where), true);
          break;
        case "uint16":
          view.setUint16(at, toNumber(value, where), true);
          break;
        case "int32":
          view.setInt32(at, toNumber(value, where), true);
          break;
        case "uint32":
          view.setUint32(at, toNumber(value, where), true);
          break;
        case "int64":
          view.setBigInt64(at, toBigInt(value, where, false), true);
          break;
        case "uint64":
          view.setBigUint64(at, toBigInt(value, where, true), true);
          break;
        case "float16":
          view.setUint16(at, numberToFloat16(toNumber(value, where)), true);
          break;
        case "float32":
          view.setFloat32(at, toNumber(value, where), true);
          break;
        case "float64":
          view.setFloat64(at, toNumber(value, where), true);
          break;
      }
    }
  }
  return create(TensorSchema, { name, dtype: dataType(dtype), shape: shape.map(BigInt), data });
}

// -- decoding ------------------------------------------------------------------------------

/** The bytes as an aligned copy (typed arrays need their offset to be a multiple of the item size). */
function aligned(data: Uint8Array): ArrayBuffer {
  return data.slice().buffer as ArrayBuffer;
}

/** The wire's message as a Tensor of the language's arrays (see TensorValues). */
export function decodeTensor(message: TensorMessage): Tensor {
  const name = message.name;
  const dtype = dtypeName(message.dtype);
  if (dtype === undefined) throw new TypeError(`tensor ${name}: unknown dtype ${message.dtype}`);
  const shape = message.shape.map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const data = message.data;
  if (dtype === "string") {
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const strings: string[] = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 4 > data.length) throw new RangeError(`tensor ${name}: string data ends early`);
      const length = view.getUint32(at, true);
      if (at + 4 + length > data.length) throw new RangeError(`tensor ${name}: string data ends early`);
      strings.push(decoder.decode(data.subarray(at + 4, at + 4 + length)));
      at += 4 + length;
    }
    if (at !== data.length) throw new RangeError(`tensor ${name}: ${data.length - at} bytes after the strings`);
    return new Tensor(dtype, shape, strings);
  }
  const itemsize = ITEMSIZE[dtype];
  if (data.length !== count * itemsize) {
    throw new RangeError(`tensor ${name}: ${dtype}[${shape.join(", ")}] takes ${count * itemsize} bytes, got ${data.length}`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const read = (get: (at: number) => number): number[] => Array.from({ length: count }, (_, i) => get(i * itemsize));
  let values: TensorValues;
  switch (dtype) {
    case "bool":
      values = Array.from(data, (byte) => byte !== 0);
      break;
    case "int8":
      values = new Int8Array(aligned(data));
      break;
    case "uint8":
      values = new Uint8Array(aligned(data));
      break;
    case "int64":
      values = read((at) => Number(view.getBigInt64(at, true)));
      break;
    case "uint64":
      values = read((at) => Number(view.getBigUint64(at, true)));
      break;
    case "float16":
      values = Float32Array.from(read((at) => float16ToNumber(view.getUint16(at, true))));
      break;
    default:
      if (LITTLE_ENDIAN) {
        const Kind = { int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, float32: Float32Array, float64: Float64Array }[dtype];
        values = new Kind(aligned(data));
      } else {
        const get = {
          int16: (at: number) => view.getInt16(at, true),
          uint16: (at: number) => view.getUint16(at, true),
          int32: (at: number) => view.getInt32(at, true),
          uint32: (at: number) => view.getUint32(at, true),
          float32: (at: number) => view.getFloat32(at, true),
          float64: (at: number) => view.getFloat64(at, true),
        }[dtype];
        const Kind = { int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, float32: Float32Array, float64: Float64Array }[dtype];
        values = Kind.from(read(get));
      }
  }
  return new Tensor(dtype, shape, values);
}
