/**
 * Building blocks shared by the spec-layer codecs in this folder: little-endian fields at fixed byte
 * offsets, declarative layouts (one object literal per structure, so every interface field has exactly
 * one offset), bit packing for command dwords, and the result type of decoders that validate.
 *
 * Rules every codec here follows:
 * - Encoders zero the whole structure first (reserved bytes are 0) and mask numeric fields to their
 *   width (a value too wide for its field wraps, as DataView does). Values that cannot be represented
 *   at all — an ASCII string that is too long or holds non-printable characters, a byte array longer
 *   than its field, more list entries than the structure holds, a destination buffer that is too
 *   small — are our own bugs and throw `RangeError`.
 * - Decoders never throw on bad input. A fixed-size structure shorter than its size decodes as if the
 *   missing bytes were zero; structures whose consistency matters (controller state) return a
 *   `CodecResult` with a closed error-code set.
 */
import { readU64AsNumber, writeU64FromNumber } from "./sqe.ts";

/** One field of a structure: `at` is the byte offset from the structure's start. */
export interface Field<T> {
  readonly at: number;
  readonly bytes: number;
  read(v: DataView, base: number): T;
  write(v: DataView, base: number, value: T): void;
}

/** A structure layout: one field per property of X (the compiler checks that none is missing). */
export type Layout<X> = { readonly [K in keyof X]-?: Field<X[K]> };

/** Result of a decoder that validates its input. */
export type CodecResult<T, E extends string> =
  | { ok: true; value: T }
  | { ok: false; error: E; detail: string };

/** Command dwords 10–15 of an SQE, as the command-field codecs produce and consume them. */
export interface CommandDwords {
  cdw10: number;
  cdw11: number;
  cdw12: number;
  cdw13: number;
  cdw14: number;
  cdw15: number;
}

export function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** `src` itself when it holds at least `n` bytes, else a zero-filled copy of length `n`. */
export function fit(src: Uint8Array, n: number): Uint8Array {
  if (src.byteLength >= n) return src;
  const out = new Uint8Array(n);
  out.set(src);
  return out;
}

/** The buffer an encoder writes: `dst` (first `n` bytes zeroed) or a new zeroed buffer of `n` bytes. */
export function target(dst: Uint8Array | undefined, n: number): Uint8Array {
  if (dst === undefined) return new Uint8Array(n);
  if (dst.byteLength < n) throw new RangeError(`destination holds ${dst.byteLength} bytes, need ${n}`);
  dst.fill(0, 0, n);
  return dst;
}

/** Each layout's keys and fields, listed once (layouts are constant object literals). */
const layoutEntries = new WeakMap<object, { keys: string[]; fields: Field<unknown>[] }>();

function entriesOf<X>(layout: Layout<X>): { keys: string[]; fields: Field<unknown>[] } {
  let e = layoutEntries.get(layout);
  if (e === undefined) {
    const keys = Object.keys(layout);
    e = { keys, fields: keys.map((k) => (layout as Record<string, Field<unknown>>)[k]!) };
    layoutEntries.set(layout, e);
  }
  return e;
}

export function readLayout<X>(layout: Layout<X>, v: DataView, base = 0): X {
  const { keys, fields } = entriesOf(layout);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) out[keys[i]!] = fields[i]!.read(v, base);
  return out as X;
}

export function writeLayout<X>(layout: Layout<X>, value: X, v: DataView, base = 0): void {
  const { keys, fields } = entriesOf(layout);
  const x = value as Record<string, unknown>;
  for (let i = 0; i < keys.length; i++) fields[i]!.write(v, base, x[keys[i]!]);
}

/** Size in bytes covered by a layout: the end of its last field. */
export function layoutEnd<X>(layout: Layout<X>): number {
  let end = 0;
  for (const key of Object.keys(layout) as (keyof X)[]) {
    const f = layout[key];
    end = Math.max(end, f.at + f.bytes);
  }
  return end;
}

export function u8(at: number): Field<number> {
  return {
    at,
    bytes: 1,
    read: (v, b) => v.getUint8(b + at),
    write: (v, b, x) => v.setUint8(b + at, x),
  };
}

export function u16(at: number): Field<number> {
  return {
    at,
    bytes: 2,
    read: (v, b) => v.getUint16(b + at, true),
    write: (v, b, x) => v.setUint16(b + at, x, true),
  };
}

/** 24-bit little-endian value (IEEE OUI). */
export function u24(at: number): Field<number> {
  return {
    at,
    bytes: 3,
    read: (v, b) => v.getUint16(b + at, true) | (v.getUint8(b + at + 2) << 16),
    write: (v, b, x) => {
      v.setUint16(b + at, x & 0xffff, true);
      v.setUint8(b + at + 2, (x >>> 16) & 0xff);
    },
  };
}

export function u32(at: number): Field<number> {
  return {
    at,
    bytes: 4,
    read: (v, b) => v.getUint32(b + at, true),
    write: (v, b, x) => v.setUint32(b + at, x >>> 0, true),
  };
}

/** 64-bit value as bigint (full range). */
export function u64(at: number): Field<bigint> {
  return {
    at,
    bytes: 8,
    read: (v, b) => v.getBigUint64(b + at, true),
    write: (v, b, x) => v.setBigUint64(b + at, BigInt.asUintN(64, x), true),
  };
}

/**
 * 64-bit value as a JS number, for addresses, LBAs and byte counts. Values of 2^53 and more decode as
 * `Number.MAX_SAFE_INTEGER` (no DMA map or namespace contains that), as `readU64AsNumber` does.
 */
export function u64n(at: number): Field<number> {
  return {
    at,
    bytes: 8,
    read: (v, b) => readU64AsNumber(v, b + at),
    write: (v, b, x) => writeU64FromNumber(v, b + at, x),
  };
}

/** 128-bit value as bigint (capacities, SMART counters, controller-state sizes). */
export function u128(at: number): Field<bigint> {
  return {
    at,
    bytes: 16,
    read: (v, b) => (v.getBigUint64(b + at + 8, true) << 64n) | v.getBigUint64(b + at, true),
    write: (v, b, x) => {
      const w = BigInt.asUintN(128, x);
      v.setBigUint64(b + at, BigInt.asUintN(64, w), true);
      v.setBigUint64(b + at + 8, w >> 64n, true);
    },
  };
}

function checkPrintable(s: string, bytes: number, what: string): void {
  if (s.length > bytes) throw new RangeError(`${what} "${s}" is longer than ${bytes} bytes`);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new RangeError(`${what} "${s}" has a non-printable character`);
  }
}

/**
 * ASCII string padded with `pad` (0x20 space unless told). Decoding strips trailing spaces and NULs,
 * so a value with trailing spaces does not round-trip.
 */
export function ascii(at: number, bytes: number, pad = 0x20): Field<string> {
  return {
    at,
    bytes,
    read: (v, b) => {
      let end = bytes;
      while (end > 0) {
        const c = v.getUint8(b + at + end - 1);
        if (c !== 0x20 && c !== 0) break;
        end--;
      }
      let s = "";
      for (let i = 0; i < end; i++) s += String.fromCharCode(v.getUint8(b + at + i));
      return s;
    },
    write: (v, b, s) => {
      checkPrintable(s, bytes, "ASCII field");
      for (let i = 0; i < bytes; i++) v.setUint8(b + at + i, i < s.length ? s.charCodeAt(i) : pad);
    },
  };
}

/** NUL-padded string (NQN): decoding stops at the first NUL. */
export function asciiz(at: number, bytes: number): Field<string> {
  return {
    at,
    bytes,
    read: (v, b) => {
      let s = "";
      for (let i = 0; i < bytes; i++) {
        const c = v.getUint8(b + at + i);
        if (c === 0) break;
        s += String.fromCharCode(c);
      }
      return s;
    },
    write: (v, b, s) => {
      checkPrintable(s, bytes, "NUL-padded string");
      for (let i = 0; i < bytes; i++) v.setUint8(b + at + i, i < s.length ? s.charCodeAt(i) : 0);
    },
  };
}

/** Raw bytes (identifiers, vendor areas). Encoding a shorter array zero-fills the rest. */
export function bytes(at: number, n: number): Field<Uint8Array> {
  return {
    at,
    bytes: n,
    read: (v, b) => new Uint8Array(v.buffer.slice(v.byteOffset + b + at, v.byteOffset + b + at + n)),
    write: (v, b, x) => {
      if (x.byteLength > n) throw new RangeError(`byte field holds ${n} bytes, got ${x.byteLength}`);
      new Uint8Array(v.buffer, v.byteOffset + b + at, n).set(x);
    },
  };
}

/** Array of `count` little-endian u16. Decoding returns all `count`; encoding writes what is given. */
export function u16s(at: number, count: number): Field<number[]> {
  return {
    at,
    bytes: 2 * count,
    read: (v, b) => Array.from({ length: count }, (_, i) => v.getUint16(b + at + 2 * i, true)),
    write: (v, b, x) => {
      if (x.length > count) throw new RangeError(`array holds ${count} entries, got ${x.length}`);
      x.forEach((e, i) => {
        v.setUint16(b + at + 2 * i, e, true);
      });
    },
  };
}

/** Array of `count` sub-structures, `stride` bytes apart. Same decode/encode rule as `u16s`. */
export function structs<S>(at: number, count: number, stride: number, layout: Layout<S>): Field<S[]> {
  return {
    at,
    bytes: stride * count,
    read: (v, b) => Array.from({ length: count }, (_, i) => readLayout(layout, v, b + at + stride * i)),
    write: (v, b, x) => {
      if (x.length > count) throw new RangeError(`array holds ${count} entries, got ${x.length}`);
      x.forEach((e, i) => {
        writeLayout(layout, e, v, b + at + stride * i);
      });
    },
  };
}

/** Bits `lo .. lo+width-1` of a dword (width < 32). */
export function bits(dw: number, lo: number, width: number): number {
  return (dw >>> lo) & ((1 << width) - 1);
}

/** `value` masked to `width` bits and shifted to bit `lo`, as an unsigned dword. */
export function place(value: number, lo: number, width: number): number {
  const mask = width >= 32 ? 0xffffffff : (1 << width) - 1;
  return ((value & mask) << lo) >>> 0;
}

export function bit(dw: number, n: number): boolean {
  return ((dw >>> n) & 1) === 1;
}

export function flag(on: boolean, n: number): number {
  return on ? (1 << n) >>> 0 : 0;
}

/** ORs disjoint dword parts into an unsigned dword. */
export function pack(...parts: number[]): number {
  let dw = 0;
  for (const p of parts) dw |= p;
  return dw >>> 0;
}

/** Dwords 10–15, missing ones as 0. */
export function dwords(c: Partial<CommandDwords>): CommandDwords {
  return {
    cdw10: (c.cdw10 ?? 0) >>> 0,
    cdw11: (c.cdw11 ?? 0) >>> 0,
    cdw12: (c.cdw12 ?? 0) >>> 0,
    cdw13: (c.cdw13 ?? 0) >>> 0,
    cdw14: (c.cdw14 ?? 0) >>> 0,
    cdw15: (c.cdw15 ?? 0) >>> 0,
  };
}

/** A 64-bit byte offset split over two dwords (low, high), as a number (< 2^53). */
export function splitU64(value: number): [lo: number, hi: number] {
  return [value >>> 0, Math.floor(value / 0x1_0000_0000) >>> 0];
}

export function joinU64(lo: number, hi: number): number {
  if (hi >= 0x200000) return Number.MAX_SAFE_INTEGER;
  return hi * 0x1_0000_0000 + (lo >>> 0);
}
