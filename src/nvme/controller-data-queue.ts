/**
 * TP4159 Controller Data Queue command (admin 45h) and the User Data Migration Queue entry
 * (reference §4.7; layouts as in libnvme / nvme-cli / libvfn).
 *
 *   host (controlling admin SQ)                               controller
 *   Controller Data Queue SEL 0 Create, QT 0, CQS = CNTLID ──► allocates a UDMQ in host memory (PRP1)
 *                                                          ◄── CQE DW0[15:0] = CDQID
 *   Track Send SEL 0 LACT 1 (start logging) on CDQID        ──► logs LBA ranges written by CNTLID
 *                                                          ◄── 32-byte entries, phase tag per pass
 *   Set Features 21h (CDQID, HP)                            ──► frees consumed slots
 *   Track Send LACT 0 / Migration Send Suspend [DUDMQ]       ──► last entry: ESA 2 (stopped) / 3 (suspended)
 *   Controller Data Queue SEL 1 Delete CDQID                 ──► queue released
 *
 * Command: CDW10 SEL 7:0, MOS 31:16 (Create: QT = MOS[7:0]);
 *          Create: CDW11 PC bit 0, CQS 31:16 (UDMQ: the CNTLID whose changes are logged), CDW12 CDQSIZE
 *          (dwords); Delete: CDW11 CDQID 15:0.
 * UDMQ entry (32 B): NSID u32 @0, NLB u32 @4 (0's based), SLBA u64 @8, reserved 16..30,
 *          byte 31: phase bit 0, ESA bits 3:1, reserved bit 4, DLBA bit 5, LBACIR bits 7:6.
 *
 * Compatibility rule: an undefined SEL decodes to an error value; unknown QT values are returned as
 * read (the controller rejects them); reserved bits are ignored on decode and zero on encode.
 */
import {
  bit,
  bits,
  type CodecResult,
  type CommandDwords,
  dataView,
  dwords,
  fit,
  flag,
  pack,
  place,
  target,
} from "./codec.ts";
import { readU64AsNumber, writeU64FromNumber } from "./sqe.ts";

export const ControllerDataQueueSel = { Create: 0, Delete: 1 } as const;
/** Queue Type (QT). */
export const ControllerDataQueueType = { UserDataMigrationQueue: 0 } as const;

export interface ControllerDataQueueCreate {
  sel: typeof ControllerDataQueueSel.Create;
  /** Queue Type. */
  qt: number;
  /** Physically Contiguous (else PRP1 points to a PRP list). */
  pc: boolean;
  /** Create Queue Specific: for a User Data Migration Queue, the CNTLID of the logged controller. */
  cqs: number;
  /** Queue size, dwords. */
  cdqsize: number;
}

export interface ControllerDataQueueDelete {
  sel: typeof ControllerDataQueueSel.Delete;
  cdqid: number;
}

export type ControllerDataQueueCommand = ControllerDataQueueCreate | ControllerDataQueueDelete;

export function encodeControllerDataQueue(f: ControllerDataQueueCommand): CommandDwords {
  switch (f.sel) {
    case ControllerDataQueueSel.Create:
      return dwords({
        cdw10: pack(place(f.sel, 0, 8), place(f.qt, 16, 8)),
        cdw11: pack(flag(f.pc, 0), place(f.cqs, 16, 16)),
        cdw12: f.cdqsize,
      });
    case ControllerDataQueueSel.Delete:
      return dwords({ cdw10: place(f.sel, 0, 8), cdw11: place(f.cdqid, 0, 16) });
  }
}

export function decodeControllerDataQueue(
  c: Partial<CommandDwords>,
): CodecResult<ControllerDataQueueCommand, "invalid-sel"> {
  const d = dwords(c);
  const sel = bits(d.cdw10, 0, 8);
  switch (sel) {
    case ControllerDataQueueSel.Create:
      return {
        ok: true,
        value: {
          sel,
          qt: bits(d.cdw10, 16, 8),
          pc: bit(d.cdw11, 0),
          cqs: bits(d.cdw11, 16, 16),
          cdqsize: d.cdw12,
        },
      };
    case ControllerDataQueueSel.Delete:
      return { ok: true, value: { sel, cdqid: bits(d.cdw11, 0, 16) } };
    default:
      return { ok: false, error: "invalid-sel", detail: `Controller Data Queue SEL ${sel}` };
  }
}

/** Create completion DW0: bits 15:0 the allocated CDQID. */
export function encodeControllerDataQueueDw0(cdqid: number): number {
  return cdqid & 0xffff;
}
export function decodeControllerDataQueueDw0(dw0: number): number {
  return dw0 & 0xffff;
}

// ---- User Data Migration Queue entry ---------------------------------------------------------------

export const UDMQ_ENTRY_BYTES = 32;
/** Byte of the entry holding phase / ESA / DLBA / LBACIR. */
export const UDMQ_ENTRY_ATTR_OFFSET = 31;
/** Dwords per entry: a queue of `cdqsize` dwords holds `cdqsize / 8` entries. */
export const UDMQ_ENTRY_DWORDS = 8;

/** Entry Sequence Attribute. */
export const Esa = {
  None: 0,
  First: 1,
  /** Last entry: logging was stopped (Track Send LACT 0). */
  LastLoggingStopped: 2,
  /** Last entry: the controller was suspended. */
  LastControllerSuspended: 3,
  /** Last entry: the queue became full; changes after it were not logged. */
  LastQueueFull: 7,
} as const;
export type Esa = (typeof Esa)[keyof typeof Esa];

/** LBA Change Information Reported. */
export const Lbacir = {
  /** NSID / SLBA / NLB give the changed range. */
  RangeValid: 0,
  /** Every logical block of the namespace(s) must be treated as changed. */
  AllChanged: 1,
  /** No range in this entry (e.g. a sequence marker). */
  NoRange: 2,
} as const;
export type Lbacir = (typeof Lbacir)[keyof typeof Lbacir];

export interface UserDataMigrationQueueEntry {
  nsid: number;
  /** Number of logical blocks, 0's based. */
  nlb: number;
  /** Starting LBA (exact below 2^53). */
  slba: number;
  /** Phase tag: flips each pass through the queue, starting at 1. */
  phase: number;
  /** Entry Sequence Attribute (Esa). */
  esa: number;
  /** The range was deallocated (rather than written). */
  dlba: boolean;
  /** LBA Change Information Reported (Lbacir). */
  lbacir: number;
}

export function encodeUserDataMigrationQueueEntry(
  v: UserDataMigrationQueueEntry,
  dst?: Uint8Array,
): Uint8Array {
  const out = target(dst, UDMQ_ENTRY_BYTES);
  const view = dataView(out);
  view.setUint32(0, v.nsid >>> 0, true);
  view.setUint32(4, v.nlb >>> 0, true);
  writeU64FromNumber(view, 8, v.slba);
  view.setUint8(
    UDMQ_ENTRY_ATTR_OFFSET,
    pack(place(v.phase, 0, 1), place(v.esa, 1, 3), flag(v.dlba, 5), place(v.lbacir, 6, 2)),
  );
  return out;
}

export function decodeUserDataMigrationQueueEntry(src: Uint8Array): UserDataMigrationQueueEntry {
  const view = dataView(fit(src, UDMQ_ENTRY_BYTES));
  const attr = view.getUint8(UDMQ_ENTRY_ATTR_OFFSET);
  return {
    nsid: view.getUint32(0, true),
    nlb: view.getUint32(4, true),
    slba: readU64AsNumber(view, 8),
    phase: bits(attr, 0, 1),
    esa: bits(attr, 1, 3),
    dlba: bit(attr, 5),
    lbacir: bits(attr, 6, 2),
  };
}

/** Phase tag of the entry at byte `at` of a queue buffer, without decoding it. */
export function udmqEntryPhase(queue: Uint8Array, at: number): number {
  return (queue[at + UDMQ_ENTRY_ATTR_OFFSET] ?? 0) & 1;
}
