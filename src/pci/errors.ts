/**
 * The one error type of the PCI function model.
 *
 * Two kinds of codes share it:
 * - `invalid-descriptor` / `layout` are our own bugs (a function descriptor or a capability layout that
 *   cannot be built); they are thrown from constructors.
 * - `state-*` codes describe a snapshot that cannot be restored (foreign, corrupt, or from another
 *   device layout); they are returned as values from `restore()`, never thrown.
 */
export type PciErrorCode =
  | "invalid-descriptor"
  | "layout"
  | "state-format"
  | "state-version"
  | "state-identity"
  | "state-missing-field"
  | "state-bad-value"
  | "state-vector-count";

export class PciError extends Error {
  override readonly name = "PciError";
  readonly code: PciErrorCode;

  constructor(code: PciErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Result of a `restore()`: applied (and which unknown names were ignored), or refused with nothing changed. */
export type RestoreResult = { ok: true; ignoredFields: string[] } | { ok: false; error: PciError };

/** True if `value` is an integer in [0, 2^bits). */
export function isUnsigned(value: unknown, bits: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value < 2 ** bits;
}
