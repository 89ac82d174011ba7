package dev.inferd.client;

import dev.inferd.v1.StreamResponse;
import io.grpc.Context;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * The chunks of a Stream call, as they come: an {@link Iterator} (also {@link Iterable}, for
 * a for-each loop, and {@link #stream()} for java.util.stream). {@link #close()} (or
 * try-with-resources, or closing the Stream) cancels the call: the server stops the model.
 * A failure while reading raises the {@link InferdException} of the call's status.
 *
 * <pre>{@code
 * try (ChunkStream chunks = client.stream("echo", "one two three")) {
 *   for (StreamChunk chunk : chunks) {
 *     System.out.print(chunk.text());
 *   }
 * }
 * }</pre>
 */
public final class ChunkStream implements Iterator<StreamChunk>, Iterable<StreamChunk>, AutoCloseable {
  private final Context.CancellableContext context;
  private final Iterator<StreamResponse> responses;
  private volatile boolean closed;

  ChunkStream(Context.CancellableContext context, Iterator<StreamResponse> responses) {
    this.context = context;
    this.responses = responses;
  }

  @Override
  public boolean hasNext() {
    if (closed) {
      return false;
    }
    try {
      boolean more = responses.hasNext();
      if (!more) {
        close();
      }
      return more;
    } catch (RuntimeException e) {
      close();
      throw InferdException.isStatus(e) ? InferdException.from(e) : e;
    }
  }

  @Override
  public StreamChunk next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the stream has ended");
    }
    StreamResponse response;
    try {
      response = responses.next();
    } catch (RuntimeException e) {
      close();
      throw InferdException.isStatus(e) ? InferdException.from(e) : e;
    }
    return InferdClient.chunk(response);
  }

  @Override
  public Iterator<StreamChunk> iterator() {
    return this;
  }

  /** The chunks as a sequential Stream; closing it cancels the call. */
  public Stream<StreamChunk> stream() {
    return StreamSupport.stream(Spliterators.spliteratorUnknownSize(this, Spliterator.ORDERED | Spliterator.NONNULL), false)
        .onClose(this::close);
  }

  /** Cancels the call if it is still going (idempotent). */
  public void cancel() {
    close();
  }

  @Override
  public void close() {
    if (!closed) {
      closed = true;
      context.cancel(null);
    }
  }
}
