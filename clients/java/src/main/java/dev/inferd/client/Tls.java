package dev.inferd.client;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How a client connects over TLS: {@code ca}, the PEM of the CA(s) that signed the server's
 * certificate (null: the system's roots); {@code serverName}, the name to check the
 * certificate against when it is not the address's host; {@code certChain} and
 * {@code privateKey}, the client's own PEMs for a server that requires mutual TLS.
 */
public record Tls(byte[] ca, String serverName, byte[] certChain, byte[] privateKey) {
  /** TLS that trusts the system's roots. */
  public static Tls system() {
    return new Tls(null, null, null, null);
  }

  /** TLS that trusts the CA in this PEM file. */
  public static Tls ca(Path caPem) throws IOException {
    return new Tls(Files.readAllBytes(caPem), null, null, null);
  }

  /** TLS that trusts the CA in these PEM bytes. */
  public static Tls ca(byte[] caPem) {
    return new Tls(caPem, null, null, null);
  }

  /** The same, checking the server's certificate against {@code name}. */
  public Tls withServerName(String name) {
    return new Tls(ca, name, certChain, privateKey);
  }

  /** The same, with a client certificate and key (PEM) for mutual TLS. */
  public Tls withClientCertificate(byte[] certChainPem, byte[] privateKeyPem) {
    return new Tls(ca, serverName, certChainPem, privateKeyPem);
  }

  /**
   * TLS as {@code INFERD_TLS_CA}, {@code INFERD_TLS_CLIENT_CERT}, {@code INFERD_TLS_CLIENT_KEY}
   * and {@code INFERD_TLS_SERVER_NAME} say (as the Python client reads them; {@code INFERD_TLS=1}
   * alone: the system's roots), or null: plaintext.
   */
  public static Tls fromEnvironment() throws IOException {
    String ca = env("INFERD_TLS_CA");
    String cert = env("INFERD_TLS_CLIENT_CERT");
    String key = env("INFERD_TLS_CLIENT_KEY");
    String name = env("INFERD_TLS_SERVER_NAME");
    String on = System.getenv().getOrDefault("INFERD_TLS", "").toLowerCase(java.util.Locale.ROOT);
    if (ca == null && cert == null && key == null && name == null && !(on.equals("1") || on.equals("true") || on.equals("yes"))) {
      return null;
    }
    return new Tls(read(ca), name, read(cert), read(key));
  }

  private static String env(String name) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? null : value;
  }

  private static byte[] read(String path) throws IOException {
    return path == null ? null : Files.readAllBytes(Path.of(path));
  }
}
