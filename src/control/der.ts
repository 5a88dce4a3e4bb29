/**
 * A minimal DER (ITU-T X.690) encoder: just the types an X.509 v3 certificate needs. Internal to
 * certs.ts — not API. Every function returns the complete TLV as bytes.
 */

function length(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** A TLV with an explicit tag byte. */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const len = length(content.length);
  const out = new Uint8Array(1 + len.length + content.length);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const sequence = (...items: Uint8Array[]): Uint8Array => tlv(0x30, concat(items));
export const set = (...items: Uint8Array[]): Uint8Array => tlv(0x31, concat(items));
export const nullValue = (): Uint8Array => Uint8Array.of(0x05, 0x00);
export const boolean = (v: boolean): Uint8Array => Uint8Array.of(0x01, 0x01, v ? 0xff : 0x00);
export const octetString = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes);
export const utf8String = (s: string): Uint8Array => tlv(0x0c, new TextEncoder().encode(s));
/** Context-specific constructed [n] EXPLICIT wrapper. */
export const explicit = (n: number, inner: Uint8Array): Uint8Array => tlv(0xa0 | n, inner);
/** Context-specific primitive [n] IMPLICIT with raw content (GeneralName choices, keyIdentifier). */
export const implicitPrimitive = (n: number, content: Uint8Array): Uint8Array => tlv(0x80 | n, content);

/** INTEGER from a non-negative bigint (minimal two's complement). */
export function integer(value: bigint): Uint8Array {
  if (value < 0n) throw new RangeError("negative INTEGER not supported");
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let bytes: Uint8Array = Uint8Array.from(hex.match(/../g) ?? ["00"], (h) => Number.parseInt(h, 16));
  if ((bytes[0] ?? 0) & 0x80) bytes = concat([Uint8Array.of(0), bytes]);
  return tlv(0x02, bytes);
}

/** BIT STRING with `unusedBits` (0..7) trailing unused bits in the last byte. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  return tlv(0x03, concat([Uint8Array.of(unusedBits), bytes]));
}

/** OBJECT IDENTIFIER from dotted form. */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map((a) => BigInt(a));
  const [a0, a1, ...rest] = arcs;
  if (a0 === undefined || a1 === undefined) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  for (const arc of [a0 * 40n + a1, ...rest]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** UTCTime (years 1950..2049) or GeneralizedTime (other years), as RFC 5280 §4.1.2.5 requires. */
export function time(date: Date): Uint8Array {
  const y = date.getUTCFullYear();
  const two = (n: number): string => String(n).padStart(2, "0");
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(
    date.getUTCMinutes(),
  )}${two(date.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(0x17, new TextEncoder().encode(`${two(y % 100)}${rest}`));
  return tlv(0x18, new TextEncoder().encode(`${String(y).padStart(4, "0")}${rest}`));
}

/** One element found by `readElement`: its tag and the byte ranges of the whole TLV and its content. */
export interface DerElement {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Reads the TLV starting at `offset` (definite lengths only, as DER requires). */
export function readElement(bytes: Uint8Array, offset: number): DerElement {
  const tag = bytes[offset];
  const first = bytes[offset + 1];
  if (tag === undefined || first === undefined) throw new RangeError("DER: truncated element");
  let contentStart = offset + 2;
  let len = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new RangeError("DER: unsupported length form");
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + (bytes[offset + 2 + i] ?? 0);
    contentStart += count;
  }
  const end = contentStart + len;
  if (end > bytes.length) throw new RangeError("DER: element overruns its buffer");
  return { tag, start: offset, contentStart, end };
}
