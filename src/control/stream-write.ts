/**
 * Backpressure for streams we write into (server-streaming responses, client-streaming requests):
 * grpc-js streams are Node Writables whose `write()` returns false when the HTTP/2 flow-control
 * window and the local buffer are full. `writeAll` then waits for `drain` before the next message,
 * so a fast producer (a 64 MiB namespace read) never piles megabytes up in memory.
 *
 * The wait ends early, with a ControlError, when the stream closes or errors (peer gone) or the
 * signal fires (caller cancelled, deadline). The producer iterable is then closed (`return()`), so a
 * generator's `finally` blocks run.
 */
import type { EventEmitter } from "node:events";
import { ControlError } from "./errors.ts";

/** What writeAll needs from a stream. */
export interface MessageWritable<T> extends EventEmitter {
  write(message: T): boolean;
}

function aborted(signal: AbortSignal): ControlError {
  return new ControlError("cancelled", "stream cancelled", { cause: signal.reason });
}

/** Resolves on `drain`; rejects if the stream closes/errors first or `signal` fires. */
export function waitForDrain(stream: EventEmitter, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(aborted(signal));
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.off("drain", onDrain);
      stream.off("close", onClose);
      stream.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new ControlError("cancelled", "stream closed while waiting to write"));
    };
    const onError = (e: unknown): void => {
      cleanup();
      reject(
        ControlError.is(e)
          ? e
          : new ControlError("unavailable", "stream failed while waiting to write", { cause: e }),
      );
    };
    const onAbort = (): void => {
      cleanup();
      reject(aborted(signal as AbortSignal));
    };
    stream.on("drain", onDrain);
    stream.on("close", onClose);
    stream.on("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Writes every message of `messages` into `stream`, honouring `write() === false`. Does not end the
 * stream. Returns the number of messages written.
 */
export async function writeAll<T>(
  stream: MessageWritable<T>,
  messages: AsyncIterable<T> | Iterable<T>,
  signal?: AbortSignal,
): Promise<number> {
  let count = 0;
  for await (const message of messages) {
    if (signal?.aborted) throw aborted(signal);
    count++;
    if (!stream.write(message)) await waitForDrain(stream, signal);
  }
  return count;
}
