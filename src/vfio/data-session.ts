/**
 * `DataSession`: the caller's handle on one data transfer session — what the kernel hands out as a
 * data_fd. Over vfio-user there is no descriptor (MIG_DATA_READ/WRITE address the current session);
 * the handle's `id` is what a transport may map to a descriptor number.
 *
 * Semantics (§1.10 of the VFIO v2 reference):
 *   read   saving only (else EBADF); positional → ESPIPE; after the session ended → ENODEV;
 *          PRE_COPY*: bytes, or ENOMSG at temporary end of stream;
 *          STOP_COPY: bytes, EAGAIN while the final state is still being produced, then 0 bytes
 *          (permanent end of stream) forever — never ENOMSG.
 *   write  resuming only (else EBADF); positional → ESPIPE; after the session ended → ENODEV;
 *          0 bytes → 0 with no effect; the driver may refuse (ENOMEM, EOPNOTSUPP, EINVAL).
 *   ioctl  only VFIO_MIG_GET_PRECOPY_INFO on a saving session (else ENOTTY); `argsz` < 24 → EINVAL;
 *          outside PRE_COPY / PRE_COPY_P2P → EINVAL; after the session ended → ENODEV.
 */
import type { PrecopyInfo } from "./backend.ts";

/** Result of a read: `bytes.length === 0` is the permanent end of stream. */
export type ReadResult =
  | { readonly ok: true; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly errno: number };
/** Result of a write: `written` is always the whole input. */
export type WriteResult =
  | { readonly ok: true; readonly written: number }
  | { readonly ok: false; readonly errno: number };
export type PrecopyInfoResult =
  | ({ readonly ok: true } & PrecopyInfo)
  | { readonly ok: false; readonly errno: number };
/** Result of an ioctl on the session: the argument struct as copied back. */
export type IoctlResult =
  | { readonly ok: true; readonly reply: Uint8Array }
  | { readonly ok: false; readonly errno: number };

/** What the portal provides to session handles (internal seam; not for drivers). */
export interface SessionIo {
  isAlive(session: DataSession): boolean;
  read(session: DataSession, maxBytes: number, offset: bigint | undefined): Promise<ReadResult>;
  write(session: DataSession, bytes: Uint8Array, offset: bigint | undefined): Promise<WriteResult>;
  precopyInfo(session: DataSession): Promise<PrecopyInfoResult>;
  ioctl(session: DataSession, cmd: number, arg: Uint8Array): Promise<IoctlResult>;
}

export type DataSessionKind = "saving" | "resuming";

export class DataSession {
  /** Portal-unique id, counting from 1. */
  readonly id: number;
  readonly kind: DataSessionKind;
  readonly #io: SessionIo;

  constructor(id: number, kind: DataSessionKind, io: SessionIo) {
    this.id = id;
    this.kind = kind;
    this.#io = io;
  }

  /** False once the session ended (left its state group, ERROR, reset). */
  get alive(): boolean {
    return this.#io.isAlive(this);
  }

  /**
   * Reads at most `maxBytes` (a non-negative safe integer, else EINVAL). `offset` models pread:
   * any value fails with ESPIPE (the stream has no positions).
   */
  read(maxBytes: number, offset?: bigint): Promise<ReadResult> {
    return this.#io.read(this, maxBytes, offset);
  }

  /** Appends `bytes` (only valid during the call). `offset` models pwrite: ESPIPE. */
  write(bytes: Uint8Array, offset?: bigint): Promise<WriteResult> {
    return this.#io.write(this, bytes, offset);
  }

  /** VFIO_MIG_GET_PRECOPY_INFO, typed. */
  precopyInfo(): Promise<PrecopyInfoResult> {
    return this.#io.precopyInfo(this);
  }

  /** An ioctl on the data_fd with its argument struct as bytes (`struct vfio_precopy_info`, 24 bytes). */
  ioctl(cmd: number, arg: Uint8Array): Promise<IoctlResult> {
    return this.#io.ioctl(this, cmd, arg);
  }
}
