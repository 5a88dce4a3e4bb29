/**
 * Chunking of a controller state for GetControllerState / SetControllerState, shared by server and
 * client so both apply the same rules:
 *
 *   chunk 0: offsetBytes 0           data[0 .. n0)       totalBytes T   last = (n0 == T)
 *   chunk k: offsetBytes = sum n<k   data                totalBytes T   last only on the final one
 *   final:   offsetBytes + n == T, last = true, crc32c = CRC-32C of all T bytes
 *
 * Only the last chunk may be empty (an empty state is the single chunk {offsetBytes 0, data empty,
 * totalBytes 0, last, crc32c 0}).
 * The assembler rejects anything else (gap, overlap, overrun, size change, chunk after last, missing
 * last, CRC mismatch, oversize) before allocating more than the declared, bounded total.
 */
import { crc32c } from "./crc32c.ts";
import { ControlError, type ControlErrorCode } from "./errors.ts";
import { MAX_CHUNK_BYTES } from "./limits.ts";

export interface ControllerStateChunk {
  /** Offset of `data` in the state, bytes. */
  offsetBytes: bigint;
  /** At most MAX_CHUNK_BYTES. */
  data: Uint8Array;
  /** Size of the whole state, bytes (the same in every chunk). */
  totalBytes: bigint;
  /** True on the final chunk. */
  last: boolean;
  /** CRC-32C of the whole state; meaningful only when `last`. */
  crc32c: number;
}

/** Splits `state` into chunks of `chunkBytes` (1..MAX_CHUNK_BYTES); chunks are views, not copies. */
export function* chunkControllerState(
  state: Uint8Array,
  chunkBytes: number,
): Generator<ControllerStateChunk> {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunkBytes ${chunkBytes} outside 1..${MAX_CHUNK_BYTES}`);
  }
  const totalBytes = BigInt(state.length);
  let crc = 0;
  let offset = 0;
  do {
    const end = Math.min(offset + chunkBytes, state.length);
    const data = state.subarray(offset, end);
    crc = crc32c(data, crc);
    const last = end === state.length;
    yield { offsetBytes: BigInt(offset), data, totalBytes, last, crc32c: last ? crc : 0 };
    offset = end;
  } while (offset < state.length);
}

export interface AssemblerOptions {
  /** Largest total accepted, bytes. */
  maxBytes: number;
  /** Code of the errors thrown: `invalid-argument` on the server, `internal` on the client. */
  errorCode: ControlErrorCode;
}

/** Reassembles chunks into one buffer, validating every rule in the header comment. */
export class ControllerStateAssembler {
  readonly #options: AssemblerOptions;
  #buffer: Uint8Array | undefined;
  #received = 0;
  #crc = 0;
  #done = false;

  constructor(options: AssemblerOptions) {
    this.#options = options;
  }

  /** True once the last chunk was accepted. */
  get done(): boolean {
    return this.#done;
  }

  /** Bytes accepted so far. */
  get receivedBytes(): number {
    return this.#received;
  }

  #fail(message: string): never {
    throw new ControlError(this.#options.errorCode, `controller state stream: ${message}`);
  }

  push(chunk: ControllerStateChunk): void {
    if (this.#done) this.#fail("chunk after the last one");
    if (chunk.data.length > MAX_CHUNK_BYTES) {
      this.#fail(`chunk of ${chunk.data.length} bytes exceeds ${MAX_CHUNK_BYTES}`);
    }
    if (this.#buffer === undefined) {
      if (chunk.totalBytes > BigInt(this.#options.maxBytes)) {
        this.#fail(`total ${chunk.totalBytes} bytes exceeds the limit of ${this.#options.maxBytes}`);
      }
      this.#buffer = new Uint8Array(Number(chunk.totalBytes));
    } else if (chunk.totalBytes !== BigInt(this.#buffer.length)) {
      this.#fail(`total changed from ${this.#buffer.length} to ${chunk.totalBytes} bytes`);
    }
    const buffer = this.#buffer;
    if (chunk.offsetBytes !== BigInt(this.#received)) {
      this.#fail(`chunk at offset ${chunk.offsetBytes}, expected ${this.#received}`);
    }
    const end = this.#received + chunk.data.length;
    if (end > buffer.length) this.#fail(`chunk ends at ${end}, beyond the total of ${buffer.length}`);
    buffer.set(chunk.data, this.#received);
    this.#crc = crc32c(chunk.data, this.#crc);
    this.#received = end;
    if (chunk.last) {
      if (end !== buffer.length) this.#fail(`last chunk ends at ${end}, total is ${buffer.length}`);
      if (chunk.crc32c >>> 0 !== this.#crc) {
        this.#fail(`CRC-32C mismatch: sent 0x${hex(chunk.crc32c)}, computed 0x${hex(this.#crc)}`);
      }
      this.#done = true;
    } else if (chunk.data.length === 0) {
      this.#fail("empty chunk that is not the last");
    }
  }

  /** The complete state; throws if the last chunk has not been accepted. */
  finish(): Uint8Array {
    if (!this.#done || this.#buffer === undefined) {
      this.#fail(`stream ended after ${this.#received} bytes without a last chunk`);
    }
    return this.#buffer;
  }
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}
