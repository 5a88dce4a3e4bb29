/**
 * TP4159 Controller State data structure — the payload of Migration Receive (Get Controller State)
 * and Migration Send (Set Controller State) — after libnvme's layout (reference §4.6; the 2025 Linux
 * RFC's 20-byte header is a draft and is NOT used):
 *
 *   Controller State header (48 B): VER u16 @0, CSATTR u8 @2 (bit 0 suspended), reserved 3..15,
 *                                   NVMECSS u128 @16 (dwords), VSS u128 @32 (dwords)
 *   NVMe Controller State (NVMECSS × 4 B): VER u16 @0, NIOSQ u16 @2, NIOCQ u16 @4, reserved @6,
 *                                   NIOSQ × 24-byte I/O SQ entries, then NIOCQ × 24-byte I/O CQ entries
 *   Vendor Specific state (VSS × 4 B): opaque here (nvmig's vendor section is defined by the controller)
 *
 * I/O SQ entry: IOSQPRP1 u64 @0, IOSQQSIZE u16 @8, IOSQQID @10, IOSQCQID @12, IOSQA @14 (PC bit 0,
 * QPRIO bits 2:1), IOSQHP @16, IOSQTP @18, reserved 20..23.
 * I/O CQ entry: IOCQPRP1 u64 @0, IOCQQSIZE u16 @8, IOCQQID @10, IOCQHP @12, IOCQTP @14, IOCQA u32 @16
 * (PC bit 0, IEN bit 1, S0PT bit 2, IV bits 31:16), reserved 20..23.
 * Queue sizes are 0's based, as in the Create I/O queue commands (unverified against the spec text).
 *
 * Compatibility rule: the sizes in the header are authoritative. A blob decodes only when its length
 * is exactly 48 + 4 × (NVMECSS + VSS) and the NVMe state's length is exactly 8 + 24 × (NIOSQ + NIOCQ);
 * anything else is returned as an error value (never thrown). Version checks (VER, CSVI) belong to the
 * controller, which knows what it supports. NVMECSS = 0 means "no NVMe Controller State".
 */
import {
  type CodecResult,
  dataView,
  fit,
  type Layout,
  readLayout,
  target,
  u8,
  u16,
  u32,
  u64n,
  u128,
  writeLayout,
} from "./codec.ts";

export const CONTROLLER_STATE_HEADER_BYTES = 48;
export const NVME_CONTROLLER_STATE_HEADER_BYTES = 8;
export const IO_SQ_STATE_BYTES = 24;
export const IO_CQ_STATE_BYTES = 24;
/** CSATTR bit 0: the controller was suspended when the state was captured. */
export const CSATTR_SUSPENDED = 1 << 0;
/**
 * Version numbers nvmig writes in the header VER and in the NVMe Controller State VER, and advertises
 * in Supported Controller State Formats. The spec's value is not public here; 0 is nvmig's choice.
 */
export const CONTROLLER_STATE_HEADER_VER = 0;
export const NVME_CONTROLLER_STATE_VER = 0;

// ---- header ----------------------------------------------------------------------------------------

export interface ControllerStateHeader {
  /** Version of the Controller State data structure. */
  ver: number;
  /** Controller State Attributes (CSATTR_SUSPENDED). */
  csattr: number;
  /** NVMe Controller State Size, dwords. */
  nvmecss: bigint;
  /** Vendor Specific Size, dwords. */
  vss: bigint;
}

const headerLayout: Layout<ControllerStateHeader> = {
  ver: u16(0),
  csattr: u8(2),
  nvmecss: u128(16),
  vss: u128(32),
};

export function encodeControllerStateHeader(v: ControllerStateHeader, dst?: Uint8Array): Uint8Array {
  const out = target(dst, CONTROLLER_STATE_HEADER_BYTES);
  writeLayout(headerLayout, v, dataView(out));
  return out;
}

export function decodeControllerStateHeader(src: Uint8Array): ControllerStateHeader {
  return readLayout(headerLayout, dataView(fit(src, CONTROLLER_STATE_HEADER_BYTES)));
}

/** Total bytes of the blob a header describes (48 + 4 × (NVMECSS + VSS)). */
export function controllerStateBytes(h: ControllerStateHeader): CodecResult<number, "too-large"> {
  const total = BigInt(CONTROLLER_STATE_HEADER_BYTES) + 4n * (h.nvmecss + h.vss);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) {
    return { ok: false, error: "too-large", detail: `header describes ${total} bytes` };
  }
  return { ok: true, value: Number(total) };
}

// ---- queue entries ---------------------------------------------------------------------------------

export interface IoSubmissionQueueState {
  /** PRP Entry 1 of the Create I/O SQ command (queue base, or PRP list when not contiguous). */
  iosqprp1: number;
  /** Queue Size, 0's based. */
  iosqqsize: number;
  /** Queue Identifier. */
  iosqqid: number;
  /** Completion Queue Identifier. */
  iosqcqid: number;
  /** Attributes: PC bit 0, QPRIO bits 2:1 (see `encodeIosqa`). */
  iosqa: number;
  /** Head Pointer (the controller's next entry to fetch). */
  iosqhp: number;
  /** Tail Pointer (last doorbell value written by the host). */
  iosqtp: number;
}

export interface IoCompletionQueueState {
  /** PRP Entry 1 of the Create I/O CQ command. */
  iocqprp1: number;
  /** Queue Size, 0's based. */
  iocqqsize: number;
  /** Queue Identifier. */
  iocqqid: number;
  /** Head Pointer (last doorbell value written by the host). */
  iocqhp: number;
  /** Tail Pointer (the controller's next entry to post). */
  iocqtp: number;
  /** Attributes: PC bit 0, IEN bit 1, S0PT bit 2, IV bits 31:16 (see `encodeIocqa`). */
  iocqa: number;
}

const sqLayout: Layout<IoSubmissionQueueState> = {
  iosqprp1: u64n(0),
  iosqqsize: u16(8),
  iosqqid: u16(10),
  iosqcqid: u16(12),
  iosqa: u16(14),
  iosqhp: u16(16),
  iosqtp: u16(18),
};

const cqLayout: Layout<IoCompletionQueueState> = {
  iocqprp1: u64n(0),
  iocqqsize: u16(8),
  iocqqid: u16(10),
  iocqhp: u16(12),
  iocqtp: u16(14),
  iocqa: u32(16),
};

export function encodeIoSubmissionQueueState(v: IoSubmissionQueueState, dst?: Uint8Array): Uint8Array {
  const out = target(dst, IO_SQ_STATE_BYTES);
  writeLayout(sqLayout, v, dataView(out));
  return out;
}
export function decodeIoSubmissionQueueState(src: Uint8Array): IoSubmissionQueueState {
  return readLayout(sqLayout, dataView(fit(src, IO_SQ_STATE_BYTES)));
}
export function encodeIoCompletionQueueState(v: IoCompletionQueueState, dst?: Uint8Array): Uint8Array {
  const out = target(dst, IO_CQ_STATE_BYTES);
  writeLayout(cqLayout, v, dataView(out));
  return out;
}
export function decodeIoCompletionQueueState(src: Uint8Array): IoCompletionQueueState {
  return readLayout(cqLayout, dataView(fit(src, IO_CQ_STATE_BYTES)));
}

/** IOSQA sub-fields. */
export interface Iosqa {
  /** Physically Contiguous. */
  pc: boolean;
  /** Queue Priority (QPRIO in create-delete-queues.ts). */
  qprio: number;
}
export function encodeIosqa(a: Iosqa): number {
  return (a.pc ? 1 : 0) | ((a.qprio & 0x3) << 1);
}
export function decodeIosqa(iosqa: number): Iosqa {
  return { pc: (iosqa & 1) === 1, qprio: (iosqa >> 1) & 0x3 };
}

/** IOCQA sub-fields. */
export interface Iocqa {
  /** Physically Contiguous. */
  pc: boolean;
  /** Interrupts Enabled. */
  ien: boolean;
  /** Slot 0 Phase Tag: the phase tag value of the entry in slot 0 of the queue. */
  s0pt: number;
  /** Interrupt Vector. */
  iv: number;
}
export function encodeIocqa(a: Iocqa): number {
  return ((a.pc ? 1 : 0) | (a.ien ? 2 : 0) | ((a.s0pt & 1) << 2) | ((a.iv & 0xffff) << 16)) >>> 0;
}
export function decodeIocqa(iocqa: number): Iocqa {
  return { pc: (iocqa & 1) === 1, ien: (iocqa & 2) === 2, s0pt: (iocqa >>> 2) & 1, iv: iocqa >>> 16 };
}

// ---- NVMe Controller State -------------------------------------------------------------------------

export interface NvmeControllerState {
  /** Version of the NVMe Controller State format. */
  ver: number;
  /** I/O Submission Queue entries (NIOSQ = length). */
  sqs: IoSubmissionQueueState[];
  /** I/O Completion Queue entries (NIOCQ = length). */
  cqs: IoCompletionQueueState[];
}

export type NvmeControllerStateError = "truncated" | "size-mismatch";

export function nvmeControllerStateBytes(v: NvmeControllerState): number {
  return (
    NVME_CONTROLLER_STATE_HEADER_BYTES + IO_SQ_STATE_BYTES * v.sqs.length + IO_CQ_STATE_BYTES * v.cqs.length
  );
}

/** Throws when there are more than 65535 SQ or CQ entries (NIOSQ / NIOCQ are 16-bit). */
export function encodeNvmeControllerState(v: NvmeControllerState, dst?: Uint8Array): Uint8Array {
  if (v.sqs.length > 0xffff || v.cqs.length > 0xffff) throw new RangeError("NIOSQ / NIOCQ exceed 65535");
  const out = target(dst, nvmeControllerStateBytes(v));
  const view = dataView(out);
  view.setUint16(0, v.ver, true);
  view.setUint16(2, v.sqs.length, true);
  view.setUint16(4, v.cqs.length, true);
  let at = NVME_CONTROLLER_STATE_HEADER_BYTES;
  for (const sq of v.sqs) {
    writeLayout(sqLayout, sq, view, at);
    at += IO_SQ_STATE_BYTES;
  }
  for (const cq of v.cqs) {
    writeLayout(cqLayout, cq, view, at);
    at += IO_CQ_STATE_BYTES;
  }
  return out;
}

/** Decodes an NVMe Controller State whose length must be exactly 8 + 24 × (NIOSQ + NIOCQ). */
export function decodeNvmeControllerState(
  src: Uint8Array,
): CodecResult<NvmeControllerState, NvmeControllerStateError> {
  if (src.byteLength < NVME_CONTROLLER_STATE_HEADER_BYTES) {
    return { ok: false, error: "truncated", detail: `NVMe controller state of ${src.byteLength} bytes` };
  }
  const view = dataView(src);
  const niosq = view.getUint16(2, true);
  const niocq = view.getUint16(4, true);
  const want = NVME_CONTROLLER_STATE_HEADER_BYTES + IO_SQ_STATE_BYTES * niosq + IO_CQ_STATE_BYTES * niocq;
  if (src.byteLength !== want) {
    return {
      ok: false,
      error: src.byteLength < want ? "truncated" : "size-mismatch",
      detail: `NIOSQ ${niosq} + NIOCQ ${niocq} need ${want} bytes, got ${src.byteLength}`,
    };
  }
  const sqs: IoSubmissionQueueState[] = [];
  const cqs: IoCompletionQueueState[] = [];
  let at = NVME_CONTROLLER_STATE_HEADER_BYTES;
  for (let i = 0; i < niosq; i++, at += IO_SQ_STATE_BYTES) sqs.push(readLayout(sqLayout, view, at));
  for (let i = 0; i < niocq; i++, at += IO_CQ_STATE_BYTES) cqs.push(readLayout(cqLayout, view, at));
  return { ok: true, value: { ver: view.getUint16(0, true), sqs, cqs } };
}

// ---- whole blob ------------------------------------------------------------------------------------

export interface ControllerState {
  /** Header VER. */
  ver: number;
  /** Header CSATTR. */
  csattr: number;
  /** NVMe Controller State; undefined when NVMECSS = 0. */
  nvme: NvmeControllerState | undefined;
  /** Vendor Specific state (VSS × 4 bytes). */
  vendor: Uint8Array;
}

export type ControllerStateError =
  /** Shorter than the header, or than the sizes the header gives. */
  | "truncated"
  /** Longer than the sizes the header gives. */
  | "size-mismatch"
  /** The header's sizes are beyond anything representable. */
  | "too-large"
  /** The NVMe Controller State is shorter than its NIOSQ / NIOCQ need. */
  | "nvme-state-truncated"
  /** The NVMe Controller State is longer than its NIOSQ / NIOCQ need. */
  | "nvme-state-size-mismatch";

export function controllerStateBlobBytes(v: ControllerState): number {
  return (
    CONTROLLER_STATE_HEADER_BYTES + (v.nvme ? nvmeControllerStateBytes(v.nvme) : 0) + v.vendor.byteLength
  );
}

/** Header (sizes computed) + NVMe state + vendor bytes. Throws when the vendor bytes are not whole dwords. */
export function encodeControllerState(v: ControllerState, dst?: Uint8Array): Uint8Array {
  if (v.vendor.byteLength % 4 !== 0) {
    throw new RangeError(`vendor-specific state of ${v.vendor.byteLength} bytes is not whole dwords`);
  }
  const nvmeBytes = v.nvme ? nvmeControllerStateBytes(v.nvme) : 0;
  const out = target(dst, controllerStateBlobBytes(v));
  encodeControllerStateHeader(
    { ver: v.ver, csattr: v.csattr, nvmecss: BigInt(nvmeBytes / 4), vss: BigInt(v.vendor.byteLength / 4) },
    out,
  );
  if (v.nvme) encodeNvmeControllerState(v.nvme, out.subarray(CONTROLLER_STATE_HEADER_BYTES));
  out.set(v.vendor, CONTROLLER_STATE_HEADER_BYTES + nvmeBytes);
  return out;
}

export function decodeControllerState(src: Uint8Array): CodecResult<ControllerState, ControllerStateError> {
  if (src.byteLength < CONTROLLER_STATE_HEADER_BYTES) {
    return { ok: false, error: "truncated", detail: `${src.byteLength} bytes, header needs 48` };
  }
  const h = decodeControllerStateHeader(src);
  const total = controllerStateBytes(h);
  if (!total.ok) return total;
  if (src.byteLength !== total.value) {
    return {
      ok: false,
      error: src.byteLength < total.value ? "truncated" : "size-mismatch",
      detail: `header NVMECSS ${h.nvmecss} + VSS ${h.vss} dwords need ${total.value} bytes, got ${src.byteLength}`,
    };
  }
  const nvmeEnd = CONTROLLER_STATE_HEADER_BYTES + Number(h.nvmecss) * 4;
  let nvme: NvmeControllerState | undefined;
  if (h.nvmecss > 0n) {
    const r = decodeNvmeControllerState(src.subarray(CONTROLLER_STATE_HEADER_BYTES, nvmeEnd));
    if (!r.ok) {
      return {
        ok: false,
        error: r.error === "truncated" ? "nvme-state-truncated" : "nvme-state-size-mismatch",
        detail: r.detail,
      };
    }
    nvme = r.value;
  }
  return { ok: true, value: { ver: h.ver, csattr: h.csattr, nvme, vendor: src.slice(nvmeEnd) } };
}
