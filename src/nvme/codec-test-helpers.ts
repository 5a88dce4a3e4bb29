/**
 * Test support for the spec-layer codecs (imported by `*.test.ts` files only). The expectations are
 * written in the tests as plain tables taken from the spec figures — independently of the layouts in
 * the code — and checked here:
 *
 * - `checkStructFields`: for each field, encode an all-zero value with only that field set to a
 *   distinctive value; the encoding must be exactly that value's little-endian bytes at the spec
 *   offset and zero everywhere else; decoding must give the value back. The table must name every
 *   scalar field the decoder returns.
 * - `checkDwordFields`: for each command field, setting it to all ones must flip exactly the spec's
 *   bits of the spec's dword, and decode must give it back.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { CommandDwords } from "./codec.ts";

export type ByteKind =
  | "u8"
  | "u16"
  | "u24"
  | "u32"
  | "u64"
  | "u64n"
  | "u128"
  | { ascii: number }
  | { asciiz: number }
  | { bytes: number };

/** [field name, byte offset, kind] — one row of a spec figure. */
export type ByteField = readonly [name: string, offset: number, kind: ByteKind];

function sizeOf(kind: ByteKind): number {
  if (typeof kind === "object")
    return "ascii" in kind ? kind.ascii : "asciiz" in kind ? kind.asciiz : kind.bytes;
  return { u8: 1, u16: 2, u24: 3, u32: 4, u64: 8, u64n: 8, u128: 16 }[kind];
}

/** Distinctive non-zero bytes for a field at `offset` (a u64n stays below 2^53). */
export function patternBytes(offset: number, kind: ByteKind): Uint8Array {
  const n = sizeOf(kind);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (((offset + i) * 37 + 11) & 0x7f) | 0x01;
  if (typeof kind === "object" && !("bytes" in kind)) {
    for (let i = 0; i < n; i++) out[i] = 0x41 + ((offset + i) % 26); // 'A'..'Z'
  }
  if (kind === "u64n") {
    out[7] = 0;
    out[6] = (out[6] ?? 0) & 0x1f;
  }
  return out;
}

/** The JS value a field of `kind` holding `raw` bytes decodes to. */
export function decodedValue(raw: Uint8Array, kind: ByteKind): unknown {
  if (typeof kind === "object") {
    if ("bytes" in kind) return raw;
    return String.fromCharCode(...raw);
  }
  let big = 0n;
  for (let i = raw.length - 1; i >= 0; i--) big = (big << 8n) | BigInt(raw[i] ?? 0);
  return kind === "u64" || kind === "u128" ? big : Number(big);
}

export function checkStructFields<X extends object>(opts: {
  size: number;
  make: () => X;
  encode: (v: X) => Uint8Array;
  decode: (b: Uint8Array) => X;
  fields: readonly ByteField[];
  /** Decoded fields not in the table, tested elsewhere (arrays, bit fields). */
  except?: readonly string[];
}): void {
  const names = opts.fields.map(([n]) => n);
  assert.equal(new Set(names).size, names.length, "a field is listed twice");
  const decodedKeys = Object.keys(opts.decode(new Uint8Array(opts.size))).filter(
    (k) => !(opts.except ?? []).includes(k),
  );
  assert.deepEqual([...decodedKeys].sort(), [...names].sort(), "table and decoder disagree on the fields");
  // The empty value encodes as zeros, except space-padded strings, which are all spaces.
  const baseline = opts.encode(opts.make());
  const spaces = new Uint8Array(opts.size);
  for (const [, offset, kind] of opts.fields) {
    if (typeof kind === "object" && "ascii" in kind) spaces.fill(0x20, offset, offset + kind.ascii);
  }
  assert.deepEqual(baseline, spaces, "the empty value must encode as zeros (and space padding)");
  for (const [name, offset, kind] of opts.fields) {
    const raw = patternBytes(offset, kind);
    const value = decodedValue(raw, kind);
    const v = { ...opts.make(), [name]: value } as X;
    const encoded = opts.encode(v);
    assert.equal(encoded.byteLength, opts.size, `${name}: encoded size`);
    const expected = baseline.slice();
    expected.set(raw, offset);
    assert.deepEqual(encoded, expected, `${name} must sit at byte ${offset}`);
    assert.deepEqual((opts.decode(encoded) as Record<string, unknown>)[name], value, `${name} decodes`);
  }
}

/** [field name, dword, low bit, width (1 = boolean when `bool`)] — one row of a command figure. */
export type DwordField = readonly [
  name: string,
  cdw: keyof CommandDwords,
  lo: number,
  width: number,
  bool?: "bool",
];

function allOnes(width: number): number {
  return width >= 32 ? 0xffffffff : 2 ** width - 1;
}

export function checkDwordFields<X extends object>(opts: {
  base: X;
  encode: (v: X) => CommandDwords;
  decode: (c: CommandDwords) => X;
  fields: readonly DwordField[];
  /** Fields of X not in the table (e.g. the discriminant). */
  except?: readonly string[];
}): void {
  const baseDw = opts.encode(opts.base);
  const tableNames = opts.fields.map(([n]) => n);
  const keys = Object.keys(opts.decode(baseDw)).filter((k) => !(opts.except ?? []).includes(k));
  assert.deepEqual([...keys].sort(), [...tableNames].sort(), "table and decoder disagree on the fields");
  for (const [name, cdw, lo, width, bool] of opts.fields) {
    const value = bool ? true : allOnes(width);
    const v = { ...opts.base, [name]: value } as X;
    const dw = opts.encode(v);
    for (const k of Object.keys(baseDw) as (keyof CommandDwords)[]) {
      const flipped = (dw[k] ^ baseDw[k]) >>> 0;
      const want = k === cdw ? (allOnes(width) * 2 ** lo) >>> 0 : 0;
      assert.equal(
        flipped,
        want,
        `${name}: ${k} bits changed 0x${flipped.toString(16)}, want 0x${want.toString(16)}`,
      );
    }
    assert.deepEqual(opts.decode(dw), v, `${name} decodes`);
  }
  // Round trip of random values within each field's width.
  const arb = fc.record(
    Object.fromEntries(
      opts.fields.map(([name, , , width, bool]) => [
        name,
        bool ? fc.boolean() : fc.integer({ min: 0, max: allOnes(Math.min(width, 32)) }),
      ]),
    ),
    { noNullPrototype: true },
  );
  fc.assert(
    fc.property(arb, (r) => {
      const v = { ...opts.base, ...r } as X;
      assert.deepEqual(opts.decode(opts.encode(v)), v);
    }),
    { numRuns: 200 },
  );
}

/** fast-check arbitrary for a struct built from a field table (for round-trip properties). */
export function structArbitrary(fields: readonly ByteField[]): fc.Arbitrary<Record<string, unknown>> {
  const one = (kind: ByteKind): fc.Arbitrary<unknown> => {
    if (typeof kind === "object") {
      if ("bytes" in kind) return fc.uint8Array({ minLength: kind.bytes, maxLength: kind.bytes });
      const n = "ascii" in kind ? kind.ascii : kind.asciiz;
      // Printable, no trailing space (trailing spaces are padding by definition).
      return fc
        .string({
          unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
          maxLength: n,
        })
        .map((s) => s);
    }
    switch (kind) {
      case "u8":
        return fc.integer({ min: 0, max: 0xff });
      case "u16":
        return fc.integer({ min: 0, max: 0xffff });
      case "u24":
        return fc.integer({ min: 0, max: 0xffffff });
      case "u32":
        return fc.integer({ min: 0, max: 0xffffffff });
      case "u64n":
        return fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 });
      case "u64":
        return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
      case "u128":
        return fc.bigInt({ min: 0n, max: 2n ** 128n - 1n });
    }
  };
  return fc.record(Object.fromEntries(fields.map(([name, , kind]) => [name, one(kind)])), {
    noNullPrototype: true,
  });
}
