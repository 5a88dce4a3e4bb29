/**
 * Shared pieces of the vfio-user codecs: the decode-error value and little-endian helpers.
 *
 * Decoders never throw on peer input: they return either the decoded value or a `DecodeError`
 * carrying the errno the server puts in its error reply. 64-bit fields are exposed as JS numbers;
 * a value above 2^53 − 1 cannot be represented and is refused (EINVAL) rather than rounded.
 */
import { Errno } from "./constants.ts";

/** A peer message that could not be decoded; `errno` is what an error reply would carry. */
export interface DecodeError {
  readonly kind: "decode-error";
  readonly errno: number;
  /** Short machine-readable reason, e.g. `payload-too-short`; used in log events. */
  readonly reason: string;
}

export function decodeError(errno: number, reason: string): DecodeError {
  return { kind: "decode-error", errno, reason };
}

export function isDecodeError(v: unknown): v is DecodeError {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "decode-error";
}

/** `EINVAL` error for a payload shorter than the fixed structure of its message. */
export function tooShort(what: string): DecodeError {
  return decodeError(Errno.EINVAL, `${what}-too-short`);
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Reads a u64 as a number, or undefined if it exceeds 2^53 − 1. */
export function readU64(v: DataView, at: number): number | undefined {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  if (hi >= 0x200000) return undefined;
  return hi * 0x1_0000_0000 + lo;
}

/** Writes a non-negative safe integer as a u64. */
export function writeU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value >>> 0, true);
  v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** True for an integer in [0, 2^32). */
export function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}
