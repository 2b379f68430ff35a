/**
 * A process whose stdout or stderr reader went away (a log shipper restarted, the pipe's other end
 * exited) gets EPIPE on its next write. Node emits that as an 'error' event on `process.stdout`; with no
 * listener it is an uncaught exception, thrown from whatever logged (a shutdown step, a signal handler),
 * so a primary could die half-way through its shutdown or leave its workers behind. The output is gone
 * either way: drop it and keep running, so SIGTERM still drains and exits within `grace`.
 */
const guarded = new WeakSet<NodeJS.WriteStream>();

/** True once a write to the stream failed because nobody reads it any more. */
export const closedOutputs = new WeakSet<NodeJS.WriteStream>();

const READER_GONE = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ECONNRESET']);

/** Makes writes to a closed stdout/stderr harmless in this process (idempotent). */
export function guardClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (guarded.has(stream)) continue;
    guarded.add(stream);
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== undefined && READER_GONE.has(error.code)) {
        closedOutputs.add(stream);
        return;
      }
      // Anything else is not ours to hide: surface it as the missing listener would have.
      throw error;
    });
  }
}
