package dev.streamlake.delta;

import io.delta.storage.HadoopFileSystemLogStore;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.concurrent.ThreadLocalRandom;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FSDataOutputStreamBuilder;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.s3a.AWSServiceIOException;
import org.apache.hadoop.fs.s3a.RemoteFileChangedException;

/**
 * A Delta log store for tables on s3a:// that several Spark drivers may write at once.
 *
 * <p>Delta commits version N by creating {@code _delta_log/N.json} only if it is absent.
 * Delta's S3 log store checks and then writes, which is safe within one driver only: two
 * drivers can both write N and one commit silently replaces the other. This store puts the
 * file with {@code If-None-Match: *} (S3 conditional writes, Hadoop's
 * {@code fs.option.create.conditional.overwrite}), so S3 itself refuses the second writer
 * with 412; that becomes the {@link java.nio.file.FileAlreadyExistsException} on which Delta
 * checks for conflicts and retries at N+1. S3 answers 409 when two conditional puts of one
 * key are in flight at once; that put is retried. Listing relies on S3's strong
 * read-after-write consistency (since December 2020).
 */
public class S3ConditionalPutLogStore extends HadoopFileSystemLogStore {
  private static final String CONDITIONAL_OVERWRITE = "fs.option.create.conditional.overwrite";
  private static final int CONFLICT_ATTEMPTS = 6;

  public S3ConditionalPutLogStore(Configuration initHadoopConf) {
    super(initHadoopConf);
  }

  @Override
  public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration conf)
      throws IOException {
    FileSystem fs = path.getFileSystem(conf);
    byte[] body = lines(actions);
    for (int attempt = 1; ; attempt++) {
      try {
        put(fs, path, body, overwrite);
        return;
      } catch (org.apache.hadoop.fs.FileAlreadyExistsException e) {
        throw alreadyExists(path, e);
      } catch (IOException e) {
        if (overwrite) {
          throw e;
        }
        int status = statusCode(e);
        if (status == 412) {
          throw alreadyExists(path, e);
        }
        if (status != 409 || attempt >= CONFLICT_ATTEMPTS) {
          throw e;
        }
        pause(attempt);
      }
    }
  }

  @Override
  public Boolean isPartialWriteVisible(Path path, Configuration conf) {
    return false; // one PUT: the object appears whole or not at all
  }

  private static void put(FileSystem fs, Path path, byte[] body, boolean overwrite)
      throws IOException {
    FSDataOutputStreamBuilder<?, ?> builder = fs.createFile(path).overwrite(overwrite);
    if (!overwrite) {
      builder.must(CONDITIONAL_OVERWRITE, true);
    }
    try (FSDataOutputStream out = builder.build()) {
      out.write(body);
    }
  }

  private static byte[] lines(Iterator<String> actions) {
    StringBuilder text = new StringBuilder();
    while (actions.hasNext()) {
      text.append(actions.next()).append('\n');
    }
    return text.toString().getBytes(StandardCharsets.UTF_8);
  }

  /** The HTTP status S3 answered with, found along the cause chain, or 0. */
  private static int statusCode(Throwable error) {
    for (Throwable e = error; e != null; e = e.getCause()) {
      if (e instanceof RemoteFileChangedException) {
        return 412; // how s3a translates a failed precondition
      }
      if (e instanceof AWSServiceIOException) {
        return ((AWSServiceIOException) e).statusCode();
      }
    }
    return 0;
  }

  private static java.nio.file.FileAlreadyExistsException alreadyExists(Path path, Throwable e) {
    java.nio.file.FileAlreadyExistsException error =
        new java.nio.file.FileAlreadyExistsException(path.toString());
    error.initCause(e);
    return error;
  }

  private static void pause(int attempt) throws InterruptedIOException {
    long ceiling = 50L << attempt;
    try {
      Thread.sleep(ThreadLocalRandom.current().nextLong(ceiling / 2, ceiling));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while retrying a conflicting commit");
    }
  }
}
