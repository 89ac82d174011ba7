package dev.inferd.client;

import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A dense tensor: a dtype, a shape (outermost first; {@code []} is a scalar, a 0 makes it
 * empty) and its values in C order in the dtype's Java array ({@link DType#arrayType()}):
 * {@code float[]} for float32 and float16, {@code long[]} for int64, {@code String[]} for
 * strings, and so on.
 *
 * <pre>{@code
 * Tensor x = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2);   // float32 [2, 2]
 * Tensor h = Tensor.of(DType.FLOAT16, new float[] {0.5f}); // float16 [1]
 * Tensor s = Tensor.scalar(DType.INT64, new long[] {7});   // int64 []
 * }</pre>
 */
public final class Tensor {
  private final DType dtype;
  private final long[] shape;
  private final Object data;

  /** A tensor of {@code dtype} holding {@code data} (its Java array) with this shape. */
  public Tensor(DType dtype, Object data, long... shape) {
    this.dtype = Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(data, "data");
    if (!dtype.arrayType().isInstance(data)) {
      throw new IllegalArgumentException(
          dtype + " values go in a " + dtype.arrayType().getSimpleName() + ", not a " + data.getClass().getSimpleName());
    }
    this.shape = shape.clone();
    long size = size(this.shape);
    int length = Array.getLength(data);
    if (size != length) {
      throw new IllegalArgumentException(
          "shape " + Arrays.toString(this.shape) + " holds " + size + " values, the array has " + length);
    }
    this.data = data;
  }

  /** A tensor of {@code dtype} with shape {@code [data.length]} (1-dimensional). */
  public static Tensor of(DType dtype, Object data) {
    return new Tensor(dtype, data, Array.getLength(data));
  }

  /**
   * With the shape given, or {@code [length]} when none is (a scalar, shape {@code []}:
   * {@link #scalar} or the constructor, whose shape is always taken as given).
   */
  public static Tensor of(DType dtype, Object data, long... shape) {
    return shape.length == 0 ? of(dtype, data) : new Tensor(dtype, data, shape);
  }

  public static Tensor of(boolean[] data, long... shape) {
    return of(DType.BOOL, data, shape);
  }

  public static Tensor of(byte[] data, long... shape) {
    return of(DType.INT8, data, shape);
  }

  public static Tensor of(short[] data, long... shape) {
    return of(DType.INT16, data, shape);
  }

  public static Tensor of(int[] data, long... shape) {
    return of(DType.INT32, data, shape);
  }

  public static Tensor of(long[] data, long... shape) {
    return of(DType.INT64, data, shape);
  }

  public static Tensor of(float[] data, long... shape) {
    return of(DType.FLOAT32, data, shape);
  }

  public static Tensor of(double[] data, long... shape) {
    return of(DType.FLOAT64, data, shape);
  }

  public static Tensor of(String[] data, long... shape) {
    return of(DType.STRING, data, shape);
  }

  /** A scalar (shape {@code []}) of one value in its dtype's array. */
  public static Tensor scalar(DType dtype, Object oneValueArray) {
    return new Tensor(dtype, oneValueArray);
  }

  static long size(long[] shape) {
    long size = 1;
    for (long dim : shape) {
      if (dim < 0) {
        throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
      }
      size = Math.multiplyExact(size, dim);
    }
    return size;
  }

  public DType dtype() {
    return dtype;
  }

  /** The dimensions (a copy). */
  public long[] shape() {
    return shape.clone();
  }

  /** How many values it holds. */
  public int size() {
    return Array.getLength(data);
  }

  /** The values' array itself (of {@link DType#arrayType()}), not a copy. */
  public Object data() {
    return data;
  }

  public boolean[] booleans() {
    return cast(boolean[].class);
  }

  public byte[] bytes() {
    return cast(byte[].class);
  }

  public short[] shorts() {
    return cast(short[].class);
  }

  public int[] ints() {
    return cast(int[].class);
  }

  public long[] longs() {
    return cast(long[].class);
  }

  public float[] floats() {
    return cast(float[].class);
  }

  public double[] doubles() {
    return cast(double[].class);
  }

  public String[] strings() {
    return cast(String[].class);
  }

  private <T> T cast(Class<T> type) {
    if (!type.isInstance(data)) {
      throw new IllegalStateException("a " + dtype + " tensor holds a " + dtype.arrayType().getSimpleName());
    }
    return type.cast(data);
  }

  /**
   * The values in C order as Java objects: Boolean, Long for the integer dtypes (UINT64 above
   * Long.MAX_VALUE as a Double), Double for the float dtypes, String.
   */
  public List<Object> toList() {
    int n = size();
    List<Object> values = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      Object v = Array.get(data, i);
      if (v instanceof Boolean || v instanceof String) {
        values.add(v);
      } else if (v instanceof Float || v instanceof Double) {
        values.add(((Number) v).doubleValue());
      } else {
        long l = ((Number) v).longValue();
        values.add(dtype == DType.UINT64 && l < 0 ? Double.parseDouble(Long.toUnsignedString(l)) : (Object) l);
      }
    }
    return values;
  }

  @Override
  public boolean equals(Object other) {
    if (!(other instanceof Tensor t)) {
      return false;
    }
    return dtype == t.dtype && Arrays.equals(shape, t.shape) && Objects.deepEquals(data, t.data);
  }

  @Override
  public int hashCode() {
    return Objects.hash(dtype, Arrays.hashCode(shape), size());
  }

  @Override
  public String toString() {
    return "Tensor[" + dtype + Arrays.toString(shape) + "]";
  }
}
