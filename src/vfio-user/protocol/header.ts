/**
 * The 16-byte vfio-user message header (spec "Header"), little-endian:
 *
 *   off 0  u16 message id   chosen by the sender, echoed in the reply
 *   off 2  u16 command      also set in the reply
 *   off 4  u32 size         whole message, header included
 *   off 8  u32 flags        bits 0–3 type (0 command, 1 reply), bit 4 NO_REPLY, bit 5 ERROR
 *   off 12 u32 error        errno of an error reply; reserved (0) in commands
 *
 * Validation (`checkHeader`) sorts problems by whether the framing can still be trusted:
 * `size < 16` cannot frame anything (the stream is lost → close the connection); `size` above the
 * configured maximum is answered with E2BIG; a type other than command/reply is answered with EINVAL.
 */
import { Errno, HEADER_BYTES, HeaderFlag, MessageType } from "./constants.ts";
import { type DecodeError, decodeError } from "./wire.ts";

export interface MessageHeader {
  /** Message id, u16. */
  id: number;
  /** Command number, u16. */
  command: number;
  /** Whole message size in bytes, header included, u32. */
  sizeBytes: number;
  /** Header flags, u32 (`HeaderFlag`). */
  flags: number;
  /** errno of an error reply, u32. */
  errno: number;
}

// The header is read and written with explicit little-endian byte arithmetic rather than a DataView:
// it is touched for every message, and a DataView over a small (JS-heap) Uint8Array makes V8 move
// the bytes off-heap first. Payload codecs use DataViews.
function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}
function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}
function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}
function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/** Decodes the first 16 bytes. Only fails (EINVAL `header-truncated`) when fewer than 16 bytes exist. */
export function decodeHeader(bytes: Uint8Array): MessageHeader | DecodeError {
  if (bytes.byteLength < HEADER_BYTES) return decodeError(Errno.EINVAL, "header-truncated");
  return {
    id: u16(bytes, 0),
    command: u16(bytes, 2),
    sizeBytes: u32(bytes, 4),
    flags: u32(bytes, 8),
    errno: u32(bytes, 12),
  };
}

/** Writes `h` into `b` at byte `at` (16 bytes). */
export function encodeHeader(h: MessageHeader, b: Uint8Array, at = 0): void {
  put16(b, at, h.id);
  put16(b, at + 2, h.command);
  put32(b, at + 4, h.sizeBytes);
  put32(b, at + 8, h.flags);
  put32(b, at + 12, h.errno);
}

export function messageType(flags: number): number {
  return flags & HeaderFlag.TYPE_MASK;
}
export function isReply(flags: number): boolean {
  return messageType(flags) === MessageType.REPLY;
}
export function hasNoReply(flags: number): boolean {
  return (flags & HeaderFlag.NO_REPLY) !== 0;
}
export function hasError(flags: number): boolean {
  return (flags & HeaderFlag.ERROR) !== 0;
}

/** Problems `checkHeader` reports. `framing` ones mean the message boundary cannot be trusted. */
export type HeaderProblem =
  | { kind: "size-below-header"; framing: true; errno: number }
  | { kind: "size-over-limit"; framing: false; errno: number }
  | { kind: "unknown-type"; framing: false; errno: number };

/**
 * Validates a decoded header: size ≥ 16, size ≤ `maxMessageBytes`, type command or reply.
 * Returns undefined when all hold.
 */
export function checkHeader(h: MessageHeader, maxMessageBytes: number): HeaderProblem | undefined {
  if (h.sizeBytes < HEADER_BYTES) return { kind: "size-below-header", framing: true, errno: Errno.EINVAL };
  if (h.sizeBytes > maxMessageBytes) return { kind: "size-over-limit", framing: false, errno: Errno.E2BIG };
  const t = messageType(h.flags);
  if (t !== MessageType.COMMAND && t !== MessageType.REPLY) {
    return { kind: "unknown-type", framing: false, errno: Errno.EINVAL };
  }
  return undefined;
}

/** Builds a whole message: header (size filled in) + payload. */
export function encodeMessage(
  h: { id: number; command: number; flags: number; errno?: number },
  payload?: Uint8Array,
): Uint8Array {
  const payloadBytes = payload?.byteLength ?? 0;
  const out = new Uint8Array(HEADER_BYTES + payloadBytes);
  encodeHeader(
    { id: h.id, command: h.command, sizeBytes: out.byteLength, flags: h.flags, errno: h.errno ?? 0 },
    out,
  );
  if (payload !== undefined) out.set(payload, HEADER_BYTES);
  return out;
}

/** A command message; `noReply` sets the NO_REPLY bit. */
export function encodeCommand(
  id: number,
  command: number,
  payload?: Uint8Array,
  noReply = false,
): Uint8Array {
  const flags = MessageType.COMMAND | (noReply ? HeaderFlag.NO_REPLY : 0);
  return encodeMessage({ id, command, flags }, payload);
}

/** A success reply. */
export function encodeReply(id: number, command: number, payload?: Uint8Array): Uint8Array {
  return encodeMessage({ id, command, flags: MessageType.REPLY }, payload);
}

/** An error reply: the header alone, with the ERROR bit and `errno`. */
export function encodeErrorReply(id: number, command: number, errno: number): Uint8Array {
  return encodeMessage({ id, command, flags: MessageType.REPLY | HeaderFlag.ERROR, errno });
}

/** The bytes after the header (a view, not a copy). */
export function payloadOf(message: Uint8Array): Uint8Array {
  return message.subarray(HEADER_BYTES);
}
