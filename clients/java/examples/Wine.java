import dev.inferd.client.ChunkStream;
import dev.inferd.client.InferResult;
import dev.inferd.client.InferdClient;
import dev.inferd.client.InferdException;
import dev.inferd.client.StreamChunk;
import dev.inferd.client.Tensor;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/** Classifies one wine from its 13 measurements, then streams echo's answer. */
public class Wine {
  public static void main(String[] args) {
    String address = args.length > 0 ? args[0] : "127.0.0.1:50051";
    try (InferdClient client = InferdClient.builder(address).timeout(Duration.ofSeconds(10)).build()) {
      // JSON records: the server's tensor adapter turns the 13 named fields into the model's input
      Map<String, Object> wine = Map.ofEntries(
          Map.entry("alcohol", 13.2), Map.entry("malic_acid", 1.78), Map.entry("ash", 2.14),
          Map.entry("alcalinity_of_ash", 11.2), Map.entry("magnesium", 100), Map.entry("total_phenols", 2.65),
          Map.entry("flavanoids", 2.76), Map.entry("nonflavanoid_phenols", 0.26), Map.entry("proanthocyanins", 1.28),
          Map.entry("color_intensity", 4.38), Map.entry("hue", 1.05), Map.entry("od280_od315", 3.4),
          Map.entry("proline", 1050));
      InferResult result = client.infer("wine", List.of(wine));
      System.out.println("wine: " + result.output());

      // tensors: the 13 floats as a float32 [1, 13] array, straight to the model
      float[] x = {13.2f, 1.78f, 2.14f, 11.2f, 100f, 2.65f, 2.76f, 0.26f, 1.28f, 4.38f, 1.05f, 3.4f, 1050f};
      Map<String, Tensor> out = client.infer("wine", Map.of("input", Tensor.of(x, 1, 13))).tensors();
      out.forEach((name, t) -> System.out.println("tensor " + name + ": " + t + " " + t.toList()));

      // a stream, cancelled after two chunks (closing the ChunkStream cancels the call)
      try (ChunkStream chunks = client.stream("echo", "one two three four")) {
        for (StreamChunk chunk : chunks) {
          System.out.println("chunk " + chunk.index() + ": " + chunk.text());
          if (chunk.index() == 1) {
            break;
          }
        }
      }

      try {
        client.infer("nope", Map.of());
      } catch (InferdException.ModelNotFound e) {
        System.out.println(e.reason() + " " + e.code() + ": " + e.getMessage() + " " + e.details());
      }
    }
  }
}
