package dev.inferd.client;

import java.util.Arrays;

/** Binary content (an image, audio, a document) and its media type ("" when unknown). */
public record Blob(byte[] data, String contentType) {
  public Blob {
    data = data == null ? new byte[0] : data;
    contentType = contentType == null ? "" : contentType;
  }

  public Blob(byte[] data) {
    this(data, "");
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof Blob b && Arrays.equals(data, b.data) && contentType.equals(b.contentType);
  }

  @Override
  public int hashCode() {
    return 31 * Arrays.hashCode(data) + contentType.hashCode();
  }

  @Override
  public String toString() {
    return "Blob[" + data.length + " bytes, " + (contentType.isEmpty() ? "no type" : contentType) + "]";
  }
}
