package dev.inferd.client;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.ToNumberPolicy;
import com.google.protobuf.ByteString;
import com.google.protobuf.ListValue;
import com.google.protobuf.NullValue;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.inferd.v1.InferRequest;
import dev.inferd.v1.Payload;
import dev.inferd.v1.Tensors;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Java values to and from inferd.v1's messages: tensors (every dtype, little-endian, C order),
 * payloads, JSON and {@code google.protobuf.Struct}.
 */
public final class Codec {
  private Codec() {}

  private static final Gson GSON = new GsonBuilder()
      .serializeNulls()
      .disableHtmlEscaping()
      .serializeSpecialFloatingPointValues()
      .setObjectToNumberStrategy(ToNumberPolicy.LONG_OR_DOUBLE)
      .create();

  // -- JSON ------------------------------------------------------------------------------

  /** A Java value (maps, lists, arrays, numbers, strings, booleans, null, records) as JSON. */
  public static String toJson(Object value) {
    return GSON.toJson(value);
  }

  /**
   * JSON as Java values: {@code Map<String, Object>} (in the document's order), {@code List},
   * {@code Long} for whole numbers that fit, {@code Double} for the others, String, Boolean, null.
   */
  public static Object fromJson(String json) {
    return GSON.fromJson(json, Object.class);
  }

  // -- payloads ----------------------------------------------------------------------------

  /**
   * A Java value as a request payload: {@link JsonText} as JSON exactly as given, a String as
   * text, a {@link Blob} or {@code byte[]} as a blob, a {@link Tensor} (named "input") or a
   * {@code Map<String, Tensor>} as tensors, anything else as JSON.
   */
  public static Payload encodeInput(Object input) {
    if (input instanceof JsonText j) {
      return Payload.newBuilder().setJson(ByteString.copyFrom(j.utf8())).build();
    }
    if (input instanceof String s) {
      return Payload.newBuilder().setText(s).build();
    }
    if (input instanceof Blob b) {
      return Payload.newBuilder()
          .setBlob(dev.inferd.v1.Blob.newBuilder().setData(ByteString.copyFrom(b.data())).setContentType(b.contentType()))
          .build();
    }
    if (input instanceof byte[] bytes) {
      return Payload.newBuilder().setBlob(dev.inferd.v1.Blob.newBuilder().setData(ByteString.copyFrom(bytes))).build();
    }
    if (input instanceof Tensor t) {
      return Payload.newBuilder().setTensors(Tensors.newBuilder().addTensors(toProto("input", t))).build();
    }
    if (input instanceof Map<?, ?> map && !map.isEmpty() && map.values().stream().allMatch(v -> v instanceof Tensor)) {
      Tensors.Builder tensors = Tensors.newBuilder();
      for (Map.Entry<?, ?> entry : map.entrySet()) {
        tensors.addTensors(toProto(String.valueOf(entry.getKey()), (Tensor) entry.getValue()));
      }
      return Payload.newBuilder().setTensors(tensors).build();
    }
    return Payload.newBuilder().setJson(ByteString.copyFromUtf8(toJson(input))).build();
  }

  /**
   * A payload as a Java value: JSON as {@link #fromJson}, text as a String, a blob as a
   * {@link Blob}, tensors as a {@code Map<String, Tensor>} in their order; null when unset.
   */
  public static Object decodeOutput(Payload payload) {
    return switch (payload.getKindCase()) {
      case JSON -> fromJson(payload.getJson().toStringUtf8());
      case TEXT -> payload.getText();
      case BLOB -> new Blob(payload.getBlob().getData().toByteArray(), payload.getBlob().getContentType());
      case TENSORS -> {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        for (dev.inferd.v1.Tensor t : payload.getTensors().getTensorsList()) {
          tensors.put(t.getName(), fromProto(t));
        }
        yield tensors;
      }
      case KIND_NOT_SET -> null;
    };
  }

  static InferRequest request(String model, Object input, InferOptions options) {
    InferRequest.Builder request = InferRequest.newBuilder().setModel(model).setId(options.id()).setInput(encodeInput(input));
    if (options.parameters() != null && !options.parameters().isEmpty()) {
      request.setParameters(toStruct(options.parameters()));
    }
    return request.build();
  }

  // -- tensors -----------------------------------------------------------------------------

  /** A tensor as the proto message, named {@code name}. */
  public static dev.inferd.v1.Tensor toProto(String name, Tensor tensor) {
    dev.inferd.v1.Tensor.Builder out = dev.inferd.v1.Tensor.newBuilder().setName(name).setDtype(tensor.dtype().toProto());
    for (long dim : tensor.shape()) {
      out.addShape(dim);
    }
    return out.setData(ByteString.copyFrom(encode(tensor))).build();
  }

  /** The tensor a proto message carries (its name is the message's). */
  public static Tensor fromProto(dev.inferd.v1.Tensor message) {
    DType dtype = DType.fromProto(message.getDtype());
    long[] shape = message.getShapeList().stream().mapToLong(Long::longValue).toArray();
    long size = Tensor.size(shape);
    if (size > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("tensor " + message.getName() + " is too large for a Java array");
    }
    ByteBuffer data = message.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    int n = (int) size;
    if (dtype != DType.STRING && data.remaining() != (long) n * dtype.itemSize()) {
      throw new IllegalArgumentException("tensor " + message.getName() + ": " + data.remaining() + " bytes for "
          + n + " " + dtype + " values");
    }
    return new Tensor(dtype, decode(dtype, data, n, message.getName()), shape);
  }

  /** The wire bytes of a tensor's values: little-endian, C order. */
  static byte[] encode(Tensor tensor) {
    DType dtype = tensor.dtype();
    int n = tensor.size();
    if (dtype == DType.STRING) {
      String[] values = tensor.strings();
      byte[][] utf8 = new byte[n][];
      int total = 0;
      for (int i = 0; i < n; i++) {
        utf8[i] = (values[i] == null ? "" : values[i]).getBytes(StandardCharsets.UTF_8);
        total += 4 + utf8[i].length;
      }
      ByteBuffer out = ByteBuffer.allocate(total).order(ByteOrder.LITTLE_ENDIAN);
      for (byte[] b : utf8) {
        out.putInt(b.length).put(b);
      }
      return out.array();
    }
    ByteBuffer out = ByteBuffer.allocate(n * dtype.itemSize()).order(ByteOrder.LITTLE_ENDIAN);
    switch (dtype) {
      case BOOL -> {
        for (boolean v : tensor.booleans()) {
          out.put((byte) (v ? 1 : 0));
        }
      }
      case INT8 -> out.put(tensor.bytes());
      case INT16 -> out.asShortBuffer().put(tensor.shorts());
      case INT32 -> out.asIntBuffer().put(tensor.ints());
      case INT64, UINT64 -> out.asLongBuffer().put(tensor.longs());
      case UINT8 -> {
        for (short v : tensor.shorts()) {
          out.put((byte) checkRange(v, 0xFF, dtype));
        }
      }
      case UINT16 -> {
        for (int v : tensor.ints()) {
          out.putShort((short) checkRange(v, 0xFFFF, dtype));
        }
      }
      case UINT32 -> {
        for (long v : tensor.longs()) {
          out.putInt((int) checkRange(v, 0xFFFF_FFFFL, dtype));
        }
      }
      case FLOAT16 -> {
        for (float v : tensor.floats()) {
          out.putShort(floatToHalf(v));
        }
      }
      case FLOAT32 -> out.asFloatBuffer().put(tensor.floats());
      case FLOAT64 -> out.asDoubleBuffer().put(tensor.doubles());
      default -> throw new AssertionError(dtype);
    }
    return out.array();
  }

  private static long checkRange(long v, long max, DType dtype) {
    if (v < 0 || v > max) {
      throw new IllegalArgumentException(v + " is out of range for " + dtype);
    }
    return v;
  }

  private static Object decode(DType dtype, ByteBuffer in, int n, String name) {
    switch (dtype) {
      case BOOL -> {
        boolean[] out = new boolean[n];
        for (int i = 0; i < n; i++) {
          out[i] = in.get() != 0;
        }
        return out;
      }
      case INT8 -> {
        byte[] out = new byte[n];
        in.get(out);
        return out;
      }
      case INT16 -> {
        short[] out = new short[n];
        in.asShortBuffer().get(out);
        return out;
      }
      case INT32 -> {
        int[] out = new int[n];
        in.asIntBuffer().get(out);
        return out;
      }
      case INT64, UINT64 -> {
        long[] out = new long[n];
        in.asLongBuffer().get(out);
        return out;
      }
      case UINT8 -> {
        short[] out = new short[n];
        for (int i = 0; i < n; i++) {
          out[i] = (short) (in.get() & 0xFF);
        }
        return out;
      }
      case UINT16 -> {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
          out[i] = in.getShort() & 0xFFFF;
        }
        return out;
      }
      case UINT32 -> {
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
          out[i] = in.getInt() & 0xFFFF_FFFFL;
        }
        return out;
      }
      case FLOAT16 -> {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
          out[i] = halfToFloat(in.getShort());
        }
        return out;
      }
      case FLOAT32 -> {
        float[] out = new float[n];
        in.asFloatBuffer().get(out);
        return out;
      }
      case FLOAT64 -> {
        double[] out = new double[n];
        in.asDoubleBuffer().get(out);
        return out;
      }
      case STRING -> {
        String[] out = new String[n];
        for (int i = 0; i < n; i++) {
          if (in.remaining() < 4) {
            throw new IllegalArgumentException("tensor " + name + ": string " + i + " is cut short");
          }
          int length = in.getInt();
          if (length < 0 || length > in.remaining()) {
            throw new IllegalArgumentException("tensor " + name + ": string " + i + " is cut short");
          }
          byte[] b = new byte[length];
          in.get(b);
          out[i] = new String(b, StandardCharsets.UTF_8);
        }
        if (in.hasRemaining()) {
          throw new IllegalArgumentException("tensor " + name + ": " + in.remaining() + " bytes after its strings");
        }
        return out;
      }
      default -> throw new AssertionError(dtype);
    }
  }

  // -- float16 (Java 17 has no Float.float16ToFloat) -----------------------------------------

  /** An IEEE 754 half (its 16 bits) as a float: exact. */
  public static float halfToFloat(short half) {
    int h = half & 0xFFFF;
    int sign = (h & 0x8000) << 16;
    int exponent = (h >>> 10) & 0x1F;
    int mantissa = h & 0x3FF;
    if (exponent == 0x1F) {
      return Float.intBitsToFloat(sign | 0x7F80_0000 | (mantissa << 13)); // inf, NaN
    }
    if (exponent == 0) {
      if (mantissa == 0) {
        return Float.intBitsToFloat(sign); // +-0
      }
      float value = mantissa * 0x1p-24f; // subnormal: mantissa * 2^-24, exact in a float
      return sign == 0 ? value : -value;
    }
    return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }

  /** A float as an IEEE 754 half (its 16 bits), rounded to nearest even as numpy does. */
  public static short floatToHalf(float value) {
    int bits = Float.floatToRawIntBits(value);
    int sign = (bits >>> 16) & 0x8000;
    int exponent = (bits >>> 23) & 0xFF;
    int mantissa = bits & 0x7F_FFFF;
    if (exponent == 0xFF) { // inf or NaN (a NaN keeps a quiet bit)
      return (short) (sign | 0x7C00 | (mantissa != 0 ? 0x200 | (mantissa >>> 13) : 0));
    }
    int e = exponent - 127 + 15;
    if (e >= 0x1F) {
      return (short) (sign | 0x7C00); // too large: infinity
    }
    if (e <= 0) { // a subnormal half, or zero
      if (e < -10) {
        return (short) sign;
      }
      int m = mantissa | 0x80_0000; // the implicit 1
      int shift = 14 - e;
      int half = m >>> shift;
      int rest = m & ((1 << shift) - 1);
      int halfway = 1 << (shift - 1);
      if (rest > halfway || (rest == halfway && (half & 1) == 1)) {
        half++;
      }
      return (short) (sign | half);
    }
    int half = (e << 10) | (mantissa >>> 13);
    int rest = mantissa & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)) {
      half++; // may carry into the exponent, up to infinity: right
    }
    return (short) (sign | half);
  }

  // -- Struct ------------------------------------------------------------------------------

  /** A map of Java values as a Struct (numbers become doubles, as Struct holds them). */
  public static Struct toStruct(Map<String, ?> values) {
    Struct.Builder struct = Struct.newBuilder();
    for (Map.Entry<String, ?> entry : values.entrySet()) {
      struct.putFields(entry.getKey(), toValue(entry.getValue()));
    }
    return struct.build();
  }

  /** A Java value as a protobuf Value. */
  public static Value toValue(Object value) {
    if (value == null) {
      return Value.newBuilder().setNullValue(NullValue.NULL_VALUE).build();
    }
    if (value instanceof Boolean b) {
      return Value.newBuilder().setBoolValue(b).build();
    }
    if (value instanceof Number n) {
      return Value.newBuilder().setNumberValue(n.doubleValue()).build();
    }
    if (value instanceof CharSequence || value instanceof Character || value instanceof Enum<?>) {
      return Value.newBuilder().setStringValue(value.toString()).build();
    }
    if (value instanceof Map<?, ?> map) {
      Struct.Builder struct = Struct.newBuilder();
      for (Map.Entry<?, ?> entry : map.entrySet()) {
        struct.putFields(String.valueOf(entry.getKey()), toValue(entry.getValue()));
      }
      return Value.newBuilder().setStructValue(struct).build();
    }
    if (value instanceof Iterable<?> items) {
      ListValue.Builder list = ListValue.newBuilder();
      for (Object item : items) {
        list.addValues(toValue(item));
      }
      return Value.newBuilder().setListValue(list).build();
    }
    if (value.getClass().isArray()) {
      ListValue.Builder list = ListValue.newBuilder();
      int n = java.lang.reflect.Array.getLength(value);
      for (int i = 0; i < n; i++) {
        list.addValues(toValue(java.lang.reflect.Array.get(value, i)));
      }
      return Value.newBuilder().setListValue(list).build();
    }
    throw new IllegalArgumentException("a " + value.getClass().getName() + " cannot be a parameter");
  }

  /** A Struct as a map of Java values: whole numbers (below 2^53) as Long, others as Double. */
  public static Map<String, Object> fromStruct(Struct struct) {
    Map<String, Object> out = new LinkedHashMap<>();
    struct.getFieldsMap().forEach((key, value) -> out.put(key, fromValue(value)));
    return out;
  }

  /** A protobuf Value as a Java value (see {@link #fromStruct}). */
  public static Object fromValue(Value value) {
    return switch (value.getKindCase()) {
      case NUMBER_VALUE -> {
        double d = value.getNumberValue();
        yield (d == Math.rint(d) && Math.abs(d) < 0x1p53) ? (Object) (long) d : (Object) d;
      }
      case STRING_VALUE -> value.getStringValue();
      case BOOL_VALUE -> value.getBoolValue();
      case STRUCT_VALUE -> fromStruct(value.getStructValue());
      case LIST_VALUE -> {
        List<Object> list = new ArrayList<>();
        for (Value item : value.getListValue().getValuesList()) {
          list.add(fromValue(item));
        }
        yield list;
      }
      case NULL_VALUE, KIND_NOT_SET -> null;
    };
  }
}
