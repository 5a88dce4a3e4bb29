/**
 * Typed arrays in saved guest state (`guest-state.ts`): JSON has no bytes, so each array travels as
 * base64 of its little-endian bytes, and is checked for its element count when read back.
 */

/** Base64 of the array's bytes (little-endian, as every machine we run on). */
export function typedToBase64(a: Uint8Array | Uint16Array | Uint32Array | Float64Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
}

type TypedCtor<T> = { new (buffer: ArrayBuffer): T; readonly BYTES_PER_ELEMENT: number };

/**
 * Decodes `text` into a new array of `ctor` with exactly `length` elements.
 * @throws GuestStateError-like RangeError when the size does not match (a corrupt or foreign state).
 */
export function base64ToTyped<T>(ctor: TypedCtor<T>, text: unknown, length: number, what: string): T {
  if (typeof text !== "string") throw new RangeError(`${what}: not a base64 string`);
  const bytes = Buffer.from(text, "base64");
  if (bytes.byteLength !== length * ctor.BYTES_PER_ELEMENT) {
    throw new RangeError(`${what}: ${bytes.byteLength} bytes, expected ${length * ctor.BYTES_PER_ELEMENT}`);
  }
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  return new ctor(buf);
}

/** Copies `from` into `into` (same length, checked). */
export function assignTyped<T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(
  into: T,
  from: T,
  what: string,
): void {
  if (into.length !== from.length)
    throw new RangeError(`${what}: ${from.length} elements, expected ${into.length}`);
  into.set(from as never);
}

/**
 * JSON text for saved state that may hold `Uint8Array`s and `bigint`s (identify data, capabilities):
 * they become `{"$u8": base64}` and `{"$bigint": "decimal"}`; `parseStateJson` turns them back.
 */
export function stringifyState(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return { $bigint: v.toString() };
    if (v instanceof Uint8Array)
      return { $u8: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
    return v;
  });
}

/** Inverse of `stringifyState`. @throws SyntaxError for text that is not JSON. */
export function parseStateJson(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && typeof o.$bigint === "string") return BigInt(o.$bigint);
      if (keys.length === 1 && typeof o.$u8 === "string") return new Uint8Array(Buffer.from(o.$u8, "base64"));
    }
    return v;
  });
}
