/**
 * The one error type of the vfio-user boundary, for promises our own side awaits (client requests,
 * server-initiated DMA). Peer mistakes seen by the *server* are never thrown: they become error
 * replies plus a log event (see `events.ts`).
 */
import { errnoName } from "./protocol/constants.ts";

export type VfioUserErrorCode =
  /** The peer answered with an error reply; `errno` is its value. */
  | "remote-error"
  /** No reply within the configured time. */
  | "timeout"
  /** The connection closed before the reply arrived. */
  | "disconnected"
  /** No negotiated connection to send on. */
  | "not-connected"
  /** The peer's reply was malformed or did not match the request. */
  | "bad-reply"
  /** The request itself was invalid (e.g. DMA outside every mapping); nothing was sent. */
  | "invalid-request"
  /** VERSION negotiation failed. */
  | "negotiation-failed";

export class VfioUserError extends Error {
  override readonly name = "VfioUserError";
  readonly code: VfioUserErrorCode;
  /** errno describing the failure (the peer's for `remote-error`). */
  readonly errno: number;

  constructor(code: VfioUserErrorCode, message: string, options: { errno: number; cause?: unknown }) {
    super(`${message} (${code}, ${errnoName(options.errno)})`, { cause: options.cause });
    this.code = code;
    this.errno = options.errno;
  }
}
