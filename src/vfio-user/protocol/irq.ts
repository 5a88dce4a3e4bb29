/**
 * DEVICE_GET_IRQ_INFO (7) and DEVICE_SET_IRQS (8), `struct vfio_irq_info` / `struct vfio_irq_set`:
 *
 *   IRQ_INFO argsz u32 · flags u32 (EVENTFD 1, MASKABLE 2, AUTOMASKED 4, NORESIZE 8) · index u32 ·
 *            count u32                                                           (16 bytes, both ways)
 *   SET_IRQS argsz u32 (= request size incl. data) · flags u32 (one DATA_* | one ACTION_*) · index u32 ·
 *            start u32 · count u32 (20 bytes) [+ count bool bytes for DATA_BOOL]; eventfds for
 *            DATA_EVENTFD travel as fds (none = de-assign). Reply: empty.
 *
 * QEMU sends SET_IRQS with argsz = payload length (20 for eventfd chunks, 20 + count for DATA_BOOL).
 */
import { Errno, SET_IRQS_ACTION_MASK, SET_IRQS_DATA_MASK, SetIrqsFlag } from "./constants.ts";
import { type DecodeError, decodeError, tooShort, viewOf } from "./wire.ts";

export const IRQ_INFO_BYTES = 16;
export const SET_IRQS_BYTES = 20;

export interface IrqInfoPayload {
  argsz: number;
  /** `IrqInfoFlag` bits (0 in a request). */
  flags: number;
  index: number;
  count: number;
}

export function encodeIrqInfo(p: IrqInfoPayload): Uint8Array {
  const out = new Uint8Array(IRQ_INFO_BYTES);
  const v = viewOf(out);
  v.setUint32(0, p.argsz, true);
  v.setUint32(4, p.flags, true);
  v.setUint32(8, p.index, true);
  v.setUint32(12, p.count, true);
  return out;
}

/** Request or reply. Payload < 16 or argsz < 16 → EINVAL (fixed-size reply, never truncated). */
export function decodeIrqInfo(payload: Uint8Array): IrqInfoPayload | DecodeError {
  if (payload.byteLength < IRQ_INFO_BYTES) return tooShort("irq-info");
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  if (argsz < IRQ_INFO_BYTES) return decodeError(Errno.EINVAL, "irq-info-argsz");
  return { argsz, flags: v.getUint32(4, true), index: v.getUint32(8, true), count: v.getUint32(12, true) };
}

export interface SetIrqsRequest {
  argsz: number;
  /** `SetIrqsFlag` bits: exactly one DATA_* and one ACTION_*. */
  flags: number;
  index: number;
  start: number;
  count: number;
  /** DATA_BOOL only: `count` bytes, non-zero = act on that sub-index. */
  bools?: Uint8Array;
}

export function encodeSetIrqs(r: {
  flags: number;
  index: number;
  start: number;
  count: number;
  bools?: Uint8Array;
}): Uint8Array {
  const data = r.bools?.byteLength ?? 0;
  const out = new Uint8Array(SET_IRQS_BYTES + data);
  const v = viewOf(out);
  v.setUint32(0, out.byteLength, true);
  v.setUint32(4, r.flags, true);
  v.setUint32(8, r.index, true);
  v.setUint32(12, r.start, true);
  v.setUint32(16, r.count, true);
  if (r.bools !== undefined) out.set(r.bools, SET_IRQS_BYTES);
  return out;
}

function singleBit(x: number): boolean {
  return x !== 0 && (x & (x - 1)) === 0;
}

/**
 * Decodes and validates a SET_IRQS request: payload and argsz ≥ 20, payload ≥ argsz; no unknown flag
 * bits; exactly one DATA_* and one ACTION_* bit; DATA_BOOL needs `count` bytes of data; start + count
 * must not overflow u32. All failures are EINVAL. (Whether fds match is checked by the server.)
 */
export function decodeSetIrqs(payload: Uint8Array): SetIrqsRequest | DecodeError {
  if (payload.byteLength < SET_IRQS_BYTES) return tooShort("set-irqs");
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  if (argsz < SET_IRQS_BYTES || argsz > payload.byteLength)
    return decodeError(Errno.EINVAL, "set-irqs-argsz");
  const flags = v.getUint32(4, true);
  const data = flags & SET_IRQS_DATA_MASK;
  const action = flags & SET_IRQS_ACTION_MASK;
  if (
    (flags & ~(SET_IRQS_DATA_MASK | SET_IRQS_ACTION_MASK)) !== 0 ||
    !singleBit(data) ||
    !singleBit(action)
  ) {
    return decodeError(Errno.EINVAL, "set-irqs-flags");
  }
  const req: SetIrqsRequest = {
    argsz,
    flags,
    index: v.getUint32(8, true),
    start: v.getUint32(12, true),
    count: v.getUint32(16, true),
  };
  if (req.start + req.count > 0xffff_ffff) return decodeError(Errno.EINVAL, "set-irqs-range");
  if (data === SetIrqsFlag.DATA_BOOL) {
    if (argsz < SET_IRQS_BYTES + req.count) return decodeError(Errno.EINVAL, "set-irqs-bool-data");
    req.bools = payload.subarray(SET_IRQS_BYTES, SET_IRQS_BYTES + req.count);
  }
  return req;
}
