package dev.inferd.client;

import dev.inferd.v1.DataType;

/**
 * A tensor's element type, with the Java array that holds its values in a {@link Tensor}.
 * Unsigned types use the next wider signed type so that every value is an ordinary number,
 * except UINT64, which is held in a {@code long[]} (values above {@link Long#MAX_VALUE} wrap:
 * read them with {@link Long#toUnsignedString(long)}).
 */
public enum DType {
  BOOL("bool", 1, boolean[].class, DataType.DATA_TYPE_BOOL),
  INT8("int8", 1, byte[].class, DataType.DATA_TYPE_INT8),
  INT16("int16", 2, short[].class, DataType.DATA_TYPE_INT16),
  INT32("int32", 4, int[].class, DataType.DATA_TYPE_INT32),
  INT64("int64", 8, long[].class, DataType.DATA_TYPE_INT64),
  UINT8("uint8", 1, short[].class, DataType.DATA_TYPE_UINT8),
  UINT16("uint16", 2, int[].class, DataType.DATA_TYPE_UINT16),
  UINT32("uint32", 4, long[].class, DataType.DATA_TYPE_UINT32),
  UINT64("uint64", 8, long[].class, DataType.DATA_TYPE_UINT64),
  FLOAT16("float16", 2, float[].class, DataType.DATA_TYPE_FLOAT16),
  FLOAT32("float32", 4, float[].class, DataType.DATA_TYPE_FLOAT32),
  FLOAT64("float64", 8, double[].class, DataType.DATA_TYPE_FLOAT64),
  /** UTF-8 strings; on the wire each element is a 4-byte little-endian length and its bytes. */
  STRING("string", 0, String[].class, DataType.DATA_TYPE_STRING);

  private final String label;
  private final int itemSize;
  private final Class<?> arrayType;
  private final DataType wire;

  DType(String label, int itemSize, Class<?> arrayType, DataType wire) {
    this.label = label;
    this.itemSize = itemSize;
    this.arrayType = arrayType;
    this.wire = wire;
  }

  /** numpy's name: "float32", "uint8", "string", ... */
  public String label() {
    return label;
  }

  /** Bytes per element on the wire (0 for STRING: variable). */
  public int itemSize() {
    return itemSize;
  }

  /** The Java array type that holds this dtype's values. */
  public Class<?> arrayType() {
    return arrayType;
  }

  /** The proto enum value. */
  public DataType toProto() {
    return wire;
  }

  /** The dtype of a proto enum value. */
  public static DType fromProto(DataType type) {
    for (DType d : values()) {
      if (d.wire == type) {
        return d;
      }
    }
    throw new IllegalArgumentException("unknown tensor dtype " + type);
  }

  /** The dtype named as numpy names it ("float32", "string", ...). */
  public static DType fromLabel(String label) {
    for (DType d : values()) {
      if (d.label.equals(label)) {
        return d;
      }
    }
    throw new IllegalArgumentException("unknown tensor dtype " + label);
  }

  @Override
  public String toString() {
    return label;
  }
}
