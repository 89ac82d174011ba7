package dev.inferd.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.inferd.v1.DataType;
import dev.inferd.v1.Payload;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The codec, with no server: tensors of every dtype, payloads, JSON and Struct. */
class CodecTest {
  private static Tensor roundTrip(Tensor tensor) {
    dev.inferd.v1.Tensor wire = Codec.toProto("t", tensor);
    assertEquals("t", wire.getName());
    assertEquals(tensor.dtype().toProto(), wire.getDtype());
    Tensor back = Codec.fromProto(wire);
    assertEquals(tensor, back);
    return back;
  }

  private static byte[] le(int bytes, long... values) {
    ByteBuffer b = ByteBuffer.allocate(bytes * values.length).order(ByteOrder.LITTLE_ENDIAN);
    for (long v : values) {
      switch (bytes) {
        case 1 -> b.put((byte) v);
        case 2 -> b.putShort((short) v);
        case 4 -> b.putInt((int) v);
        default -> b.putLong(v);
      }
    }
    return b.array();
  }

  @Test
  void everyIntegerDtypeHasItsWireBytes() {
    assertArrayEquals(new byte[] {1, 0, 1}, Codec.encode(Tensor.of(new boolean[] {true, false, true})));
    assertArrayEquals(le(1, -128, 127), Codec.encode(Tensor.of(new byte[] {-128, 127})));
    assertArrayEquals(le(2, -32768, 32767), Codec.encode(Tensor.of(new short[] {-32768, 32767})));
    assertArrayEquals(le(4, Integer.MIN_VALUE, Integer.MAX_VALUE), Codec.encode(Tensor.of(new int[] {Integer.MIN_VALUE, Integer.MAX_VALUE})));
    assertArrayEquals(le(8, Long.MIN_VALUE, Long.MAX_VALUE), Codec.encode(Tensor.of(new long[] {Long.MIN_VALUE, Long.MAX_VALUE})));
    assertArrayEquals(new byte[] {0, (byte) 0xFF}, Codec.encode(Tensor.of(DType.UINT8, new short[] {0, 255})));
    assertArrayEquals(new byte[] {(byte) 0xFF, (byte) 0xFF}, Codec.encode(Tensor.of(DType.UINT16, new int[] {65535})));
    assertArrayEquals(le(4, 0xFFFF_FFFFL), Codec.encode(Tensor.of(DType.UINT32, new long[] {4294967295L})));
    assertArrayEquals(le(8, -1), Codec.encode(Tensor.of(DType.UINT64, new long[] {-1})));
  }

  @Test
  void everyDtypeRoundTrips() {
    roundTrip(Tensor.of(new boolean[] {true, false, true}));
    roundTrip(Tensor.of(new byte[] {-128, 0, 127}));
    roundTrip(Tensor.of(new short[] {-32768, 32767}));
    roundTrip(Tensor.of(new int[] {Integer.MIN_VALUE, 0, Integer.MAX_VALUE}));
    roundTrip(Tensor.of(new long[] {-9007199254740991L, 0, 1, 9007199254740991L}, 2, 2));
    roundTrip(Tensor.of(DType.UINT8, new short[] {0, 1, 255}));
    roundTrip(Tensor.of(DType.UINT16, new int[] {0, 65535}));
    roundTrip(Tensor.of(DType.UINT32, new long[] {0, 4294967295L}));
    roundTrip(Tensor.of(DType.UINT64, new long[] {0, 9007199254740991L, -1}));
    roundTrip(Tensor.of(DType.FLOAT16, new float[] {0.5f, -2f, 65504f, 0f}));
    roundTrip(Tensor.of(new float[] {1.5f, -0.25f, Float.MIN_VALUE, Float.MAX_VALUE}));
    roundTrip(Tensor.of(new double[] {Math.PI, -1e300}, 1, 2));
    roundTrip(Tensor.of(new String[] {"a", "bé", "日本", ""}));
  }

  @Test
  void unsignedValuesReadBackAsOrdinaryNumbers() {
    byte[] wire = {(byte) 0xFF, 0};
    Tensor u8 = Codec.fromProto(dev.inferd.v1.Tensor.newBuilder().setDtype(DataType.DATA_TYPE_UINT8).addShape(2)
        .setData(ByteString.copyFrom(wire)).build());
    assertArrayEquals(new short[] {255, 0}, u8.shorts());
    Tensor u64 = Codec.fromProto(dev.inferd.v1.Tensor.newBuilder().setDtype(DataType.DATA_TYPE_UINT64).addShape(1)
        .setData(ByteString.copyFrom(le(8, -1))).build());
    assertEquals("18446744073709551615", Long.toUnsignedString(u64.longs()[0]));
    assertEquals(List.of(1.8446744073709552E19), u64.toList());
    assertThrows(IllegalArgumentException.class, () -> Codec.encode(Tensor.of(DType.UINT8, new short[] {256})));
    assertThrows(IllegalArgumentException.class, () -> Codec.encode(Tensor.of(DType.UINT32, new long[] {-1})));
  }

  @Test
  void stringsAreLengthPrefixedUtf8() {
    byte[] wire = Codec.encode(Tensor.of(new String[] {"a", "é"}));
    assertArrayEquals(new byte[] {1, 0, 0, 0, 'a', 2, 0, 0, 0, (byte) 0xC3, (byte) 0xA9}, wire);
    dev.inferd.v1.Tensor cut = dev.inferd.v1.Tensor.newBuilder().setName("s").setDtype(DataType.DATA_TYPE_STRING)
        .addShape(2).setData(ByteString.copyFrom(Arrays.copyOf(wire, 8))).build();
    assertThrows(IllegalArgumentException.class, () -> Codec.fromProto(cut));
  }

  @Test
  void scalarsAndEmptyShapes() {
    Tensor scalar = roundTrip(Tensor.scalar(DType.FLOAT32, new float[] {7f}));
    assertArrayEquals(new long[0], scalar.shape());
    assertEquals(0, Codec.toProto("s", scalar).getShapeCount());
    Tensor empty = roundTrip(new Tensor(DType.FLOAT32, new float[0], 0, 3));
    assertArrayEquals(new long[] {0, 3}, empty.shape());
    assertEquals(0, Codec.toProto("e", empty).getData().size());
    roundTrip(new Tensor(DType.STRING, new String[0], 0));
    assertArrayEquals(new long[] {4}, Tensor.of(new float[4]).shape());
  }

  @Test
  void tensorsCheckTheirShapeAndArray() {
    assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[3], 2, 2));
    assertThrows(IllegalArgumentException.class, () -> new Tensor(DType.FLOAT64, new float[1], 1));
    assertThrows(IllegalArgumentException.class, () -> new Tensor(DType.FLOAT32, new float[0], -1));
    dev.inferd.v1.Tensor wrong = dev.inferd.v1.Tensor.newBuilder().setName("x").setDtype(DataType.DATA_TYPE_FLOAT32)
        .addShape(2).setData(ByteString.copyFrom(new byte[4])).build();
    assertThrows(IllegalArgumentException.class, () -> Codec.fromProto(wrong));
  }

  @Test
  void float16IsExactWhereItCanBeAndRoundsToNearestEven() {
    assertEquals((short) 0x3800, Codec.floatToHalf(0.5f));
    assertEquals((short) 0xC000, Codec.floatToHalf(-2f));
    assertEquals((short) 0x7BFF, Codec.floatToHalf(65504f));
    assertEquals((short) 0x7C00, Codec.floatToHalf(65520f)); // rounds up to infinity
    assertEquals((short) 0x7C00, Codec.floatToHalf(Float.POSITIVE_INFINITY));
    assertEquals((short) 0xFC00, Codec.floatToHalf(Float.NEGATIVE_INFINITY));
    assertTrue(Float.isNaN(Codec.halfToFloat(Codec.floatToHalf(Float.NaN))));
    assertEquals((short) 0x0001, Codec.floatToHalf(0x1p-24f)); // the smallest subnormal
    assertEquals((short) 0x0000, Codec.floatToHalf(0x1p-26f));
    assertEquals((short) 0x8000, Codec.floatToHalf(-0f));
    assertEquals((short) 0x3C00, Codec.floatToHalf(1f + 0x1p-11f)); // a tie: to even (1.0)
    assertEquals((short) 0x3C02, Codec.floatToHalf(1f + 3 * 0x1p-11f)); // a tie: to even (up)
    // every half round-trips through float exactly
    for (int h = 0; h < 0x10000; h++) {
      float f = Codec.halfToFloat((short) h);
      if (!Float.isNaN(f)) {
        assertEquals((short) h, Codec.floatToHalf(f), "half 0x" + Integer.toHexString(h));
      }
    }
    assertEquals(0x1p-24f, Codec.halfToFloat((short) 1));
    assertEquals(-2f, Codec.halfToFloat((short) 0xC000));
  }

  @Test
  void payloadsByJavaType() {
    assertEquals(Payload.KindCase.TEXT, Codec.encodeInput("hi").getKindCase());
    Payload json = Codec.encodeInput(JsonText.of("[{\"a\": 1}]"));
    assertEquals("[{\"a\": 1}]", json.getJson().toStringUtf8()); // exactly as given
    Payload blob = Codec.encodeInput(new Blob(new byte[] {1, 2}, "image/png"));
    assertEquals("image/png", blob.getBlob().getContentType());
    assertEquals(Payload.KindCase.BLOB, Codec.encodeInput(new byte[] {1}).getKindCase());
    Payload one = Codec.encodeInput(Tensor.of(new float[] {1}));
    assertEquals("input", one.getTensors().getTensors(0).getName());
    Map<String, Tensor> named = new LinkedHashMap<>();
    named.put("b", Tensor.of(new int[] {1}));
    named.put("a", Tensor.of(new String[] {"x"}));
    Payload two = Codec.encodeInput(named);
    assertEquals(List.of("b", "a"), two.getTensors().getTensorsList().stream().map(dev.inferd.v1.Tensor::getName).toList());
    Map<String, Object> record = new LinkedHashMap<>();
    record.put("alcohol", 13.2);
    record.put("magnesium", 100);
    record.put("none", null);
    assertEquals("[{\"alcohol\":13.2,\"magnesium\":100,\"none\":null}]", Codec.encodeInput(List.of(record)).getJson().toStringUtf8());
    assertEquals("{}", Codec.encodeInput(Map.of()).getJson().toStringUtf8());

    Object back = Codec.decodeOutput(two);
    assertInstanceOf(Map.class, back);
    assertEquals(named, back);
    assertEquals(new Blob(new byte[] {1, 2}, "image/png"), Codec.decodeOutput(blob));
    assertNull(Codec.decodeOutput(Payload.getDefaultInstance()));
  }

  @Test
  void jsonNumbersKeepTheirKind() {
    Object value = Codec.fromJson("{\"a\": [1, 2.5, null, \"x\", true], \"b\": {\"c\": -3}, \"big\": 9007199254740993}");
    Map<?, ?> map = (Map<?, ?>) value;
    assertEquals(Arrays.asList(1L, 2.5, null, "x", true), map.get("a"));
    assertEquals(Map.of("c", -3L), map.get("b"));
    assertEquals(9007199254740993L, map.get("big"));
    assertEquals(List.of("a", "b", "big"), List.copyOf(map.keySet()));
  }

  @Test
  void structFromJavaMapsAndBack() {
    Map<String, Object> parameters = new LinkedHashMap<>();
    parameters.put("n", 3);
    parameters.put("f", 0.5);
    parameters.put("s", "x");
    parameters.put("b", true);
    parameters.put("l", List.of(1L, "two"));
    parameters.put("o", Map.of("k", 1));
    parameters.put("z", null);
    parameters.put("arr", new int[] {1, 2});
    Struct struct = Codec.toStruct(parameters);
    assertEquals(3.0, struct.getFieldsOrThrow("n").getNumberValue());
    assertEquals(Value.KindCase.NULL_VALUE, struct.getFieldsOrThrow("z").getKindCase());
    Map<String, Object> back = Codec.fromStruct(struct);
    assertEquals(3L, back.get("n"));
    assertInstanceOf(Long.class, back.get("n"));
    assertEquals(0.5, back.get("f"));
    assertEquals("x", back.get("s"));
    assertEquals(true, back.get("b"));
    assertEquals(List.of(1L, "two"), back.get("l"));
    assertEquals(Map.of("k", 1L), back.get("o"));
    assertNull(back.get("z"));
    assertEquals(List.of(1L, 2L), back.get("arr"));
    // whole numbers past 2^53 are not exact in a double: they stay doubles
    assertEquals(0x1p60, Codec.fromValue(Value.newBuilder().setNumberValue(0x1p60).build()));
    assertEquals(Double.POSITIVE_INFINITY, Codec.fromValue(Value.newBuilder().setNumberValue(Double.POSITIVE_INFINITY).build()));
    assertThrows(IllegalArgumentException.class, () -> Codec.toStruct(Map.of("t", new Object())));
  }
}
