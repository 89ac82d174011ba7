package dev.inferd.client;

import java.nio.charset.StandardCharsets;

/** UTF-8 JSON to send exactly as given: the client neither parses nor re-encodes it. */
public record JsonText(byte[] utf8) {
  public static JsonText of(String json) {
    return new JsonText(json.getBytes(StandardCharsets.UTF_8));
  }

  @Override
  public String toString() {
    return new String(utf8, StandardCharsets.UTF_8);
  }
}
