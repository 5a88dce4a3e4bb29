/**
 * TP4159 Migration Send (admin 41h) and Migration Receive (admin 42h) command fields (reference
 * §4.4, §4.5; bit positions as libnvme / nvme-cli / libvfn agree). Always submitted to the
 * controlling controller's admin queue, naming the controlled controller by CNTLID.
 *
 *   host (controlling admin SQ)                         controller (controlling) → controlled CNTLID
 *   Migration Send  SEL 0 Suspend  STYPE 1 [DUDMQ]  ──► stop fetching, finish fetched, suspended
 *   Migration Recv  SEL 0 Get State  offset 0, NUMD  ──► header + NVMe state + vendor (chunked by offset)
 *                                                   ◄── data; CQE DW0 bit 0 CSUP = controller suspended
 *   … state moves to the destination …
 *   Migration Send  SEL 2 Set State SEQIND 1,0..,2|3 ──► (destination, suspended) state written in chunks
 *   Migration Send  SEL 1 Resume                     ──► controlled controller runs again
 *
 * Migration Send:    CDW10 SEL 7:0, MOS 31:16 (Set State: SEQIND = bits 17:16)
 *                    CDW11 CNTLID 15:0; Suspend: STYPE 23:16, DUDMQ 31; Set State: CSVI 23:16, CSUUIDI 31:24
 *                    CDW12/13 offset (bytes), CDW14 UIDX 6:0, CDW15 NUMD
 * Migration Receive: CDW10 SEL 7:0, MOS 31:16 (Get State: CSVI = bits 23:16)
 *                    CDW11 CNTLID 15:0, CSUUIDI 23:16, CSUIDXP 31:24
 *                    CDW12/13 offset (bytes), CDW14 UIDX 6:0, CDW15 NUMD (0's based)
 *
 * NUMD of Migration Send — decision: a plain (1-based) dword count, NOT 0's based. The brief asked
 * for 0's based unless spec text said otherwise; libnvme's API documentation, which quotes the spec's
 * field descriptions, says for Migration Receive "the number of dwords to return. This is a 0's based
 * value" but for Migration Send only "the number of dwords being transferred", and libnvme, nvme-cli
 * and libvfn all transfer NUMD × 4 bytes for Send and (NUMD + 1) × 4 for Receive. Use
 * `migrationSendDataBytes` / `migrationReceiveDataBytes` (and the `…Numd` inverses) so the rule lives
 * here only. `MIGRATION_SEND_NUMD_ZEROS_BASED` records it.
 *
 * Compatibility rule: decoders report an undefined SEL as an error value (the controller answers
 * Invalid Field in Command); reserved bits are ignored on decode and written as 0 on encode.
 */
import {
  bit,
  bits,
  type CodecResult,
  type CommandDwords,
  dwords,
  flag,
  joinU64,
  pack,
  place,
  splitU64,
} from "./codec.ts";

export const MigrationSendSel = { Suspend: 0, Resume: 1, SetControllerState: 2 } as const;
export const MigrationReceiveSel = { GetControllerState: 0 } as const;
/** Suspend Type (Migration Send, Suspend). */
export const SuspendType = { SuspendNotification: 0, Suspend: 1 } as const;
/** Sequence Indicator (Migration Send, Set Controller State, MOS bits 1:0). */
export const SequenceIndicator = { NotFirstNotLast: 0, First: 1, Last: 2, Entire: 3 } as const;
/** Migration Receive CQE DW0 bit 0: the controller is suspended. */
export const MIGRATION_RECEIVE_DW0_CSUP = 1 << 0;
/** See the file header. */
export const MIGRATION_SEND_NUMD_ZEROS_BASED = false;

export interface MigrationSendSuspend {
  sel: typeof MigrationSendSel.Suspend;
  cntlid: number;
  /** Suspend Type (SuspendType). */
  stype: number;
  /** Delete the User Data Migration Queue as part of the suspend. */
  dudmq: boolean;
  /** UUID Index. */
  uidx: number;
}

export interface MigrationSendResume {
  sel: typeof MigrationSendSel.Resume;
  cntlid: number;
  uidx: number;
}

export interface MigrationSendSetControllerState {
  sel: typeof MigrationSendSel.SetControllerState;
  /** Sequence Indicator (SequenceIndicator). */
  seqind: number;
  cntlid: number;
  /** Controller State Version Index (1-based index into CNS 20h versions; 0 = none). */
  csvi: number;
  /** Controller State UUID Index (1-based index into CNS 20h UUIDs; 0 = none). */
  csuuidi: number;
  /** Byte offset of this chunk within the controller state. */
  offset: number;
  uidx: number;
  /** Number of Dwords transferred (plain count; see the file header). */
  numd: number;
}

export type MigrationSend = MigrationSendSuspend | MigrationSendResume | MigrationSendSetControllerState;

export interface MigrationReceiveGetControllerState {
  sel: typeof MigrationReceiveSel.GetControllerState;
  /** Controller State Version Index. */
  csvi: number;
  cntlid: number;
  /** Controller State UUID Index. */
  csuuidi: number;
  /** Controller State UUID Index Parameter (vendor specific). */
  csuidxp: number;
  /** Byte offset within the controller state. */
  offset: number;
  uidx: number;
  /** Number of Dwords to return, 0's based. */
  numd: number;
}

export type MigrationReceive = MigrationReceiveGetControllerState;

export type InvalidSel = "invalid-sel";

export function encodeMigrationSend(f: MigrationSend): CommandDwords {
  const uidx = place(f.uidx, 0, 7);
  switch (f.sel) {
    case MigrationSendSel.Suspend:
      return dwords({
        cdw10: place(f.sel, 0, 8),
        cdw11: pack(place(f.cntlid, 0, 16), place(f.stype, 16, 8), flag(f.dudmq, 31)),
        cdw14: uidx,
      });
    case MigrationSendSel.Resume:
      return dwords({ cdw10: place(f.sel, 0, 8), cdw11: place(f.cntlid, 0, 16), cdw14: uidx });
    case MigrationSendSel.SetControllerState: {
      const [lo, hi] = splitU64(f.offset);
      return dwords({
        cdw10: pack(place(f.sel, 0, 8), place(f.seqind, 16, 2)),
        cdw11: pack(place(f.cntlid, 0, 16), place(f.csvi, 16, 8), place(f.csuuidi, 24, 8)),
        cdw12: lo,
        cdw13: hi,
        cdw14: uidx,
        cdw15: f.numd,
      });
    }
  }
}

export function decodeMigrationSend(c: Partial<CommandDwords>): CodecResult<MigrationSend, InvalidSel> {
  const d = dwords(c);
  const sel = bits(d.cdw10, 0, 8);
  const cntlid = bits(d.cdw11, 0, 16);
  const uidx = bits(d.cdw14, 0, 7);
  switch (sel) {
    case MigrationSendSel.Suspend:
      return {
        ok: true,
        value: { sel, cntlid, stype: bits(d.cdw11, 16, 8), dudmq: bit(d.cdw11, 31), uidx },
      };
    case MigrationSendSel.Resume:
      return { ok: true, value: { sel, cntlid, uidx } };
    case MigrationSendSel.SetControllerState:
      return {
        ok: true,
        value: {
          sel,
          seqind: bits(d.cdw10, 16, 2),
          cntlid,
          csvi: bits(d.cdw11, 16, 8),
          csuuidi: bits(d.cdw11, 24, 8),
          offset: joinU64(d.cdw12, d.cdw13),
          uidx,
          numd: d.cdw15,
        },
      };
    default:
      return { ok: false, error: "invalid-sel", detail: `Migration Send SEL ${sel}` };
  }
}

export function encodeMigrationReceive(f: MigrationReceive): CommandDwords {
  const [lo, hi] = splitU64(f.offset);
  return dwords({
    cdw10: pack(place(f.sel, 0, 8), place(f.csvi, 16, 8)),
    cdw11: pack(place(f.cntlid, 0, 16), place(f.csuuidi, 16, 8), place(f.csuidxp, 24, 8)),
    cdw12: lo,
    cdw13: hi,
    cdw14: place(f.uidx, 0, 7),
    cdw15: f.numd,
  });
}

export function decodeMigrationReceive(c: Partial<CommandDwords>): CodecResult<MigrationReceive, InvalidSel> {
  const d = dwords(c);
  const sel = bits(d.cdw10, 0, 8);
  if (sel !== MigrationReceiveSel.GetControllerState) {
    return { ok: false, error: "invalid-sel", detail: `Migration Receive SEL ${sel}` };
  }
  return {
    ok: true,
    value: {
      sel,
      csvi: bits(d.cdw10, 16, 8),
      cntlid: bits(d.cdw11, 0, 16),
      csuuidi: bits(d.cdw11, 16, 8),
      csuidxp: bits(d.cdw11, 24, 8),
      offset: joinU64(d.cdw12, d.cdw13),
      uidx: bits(d.cdw14, 0, 7),
      numd: d.cdw15,
    },
  };
}

/** Migration Receive completion DW0. */
export interface MigrationReceiveDw0 {
  /** Controller Suspended. */
  csup: boolean;
}
export function encodeMigrationReceiveDw0(v: MigrationReceiveDw0): number {
  return flag(v.csup, 0);
}
export function decodeMigrationReceiveDw0(dw0: number): MigrationReceiveDw0 {
  return { csup: bit(dw0, 0) };
}

/** Bytes a Migration Send (Set Controller State) transfers for its NUMD (plain count). */
export function migrationSendDataBytes(numd: number): number {
  return numd * 4;
}
/** NUMD for a Migration Send chunk of `byteCount` bytes (a multiple of 4). */
export function migrationSendNumd(byteCount: number): number {
  if (byteCount % 4 !== 0 || byteCount < 0) throw new RangeError(`chunk of ${byteCount} bytes`);
  return byteCount / 4;
}
/** Bytes a Migration Receive returns for its 0's based NUMD. */
export function migrationReceiveDataBytes(numd: number): number {
  return (numd + 1) * 4;
}
/** 0's based NUMD for a Migration Receive of `byteCount` bytes (a multiple of 4, at least 4). */
export function migrationReceiveNumd(byteCount: number): number {
  if (byteCount % 4 !== 0 || byteCount < 4) throw new RangeError(`chunk of ${byteCount} bytes`);
  return byteCount / 4 - 1;
}

/** SEQIND of chunk `index` (0-based) of a Set Controller State sent in `count` chunks. */
export function sequenceIndicatorFor(index: number, count: number): number {
  if (count === 1) return SequenceIndicator.Entire;
  if (index === 0) return SequenceIndicator.First;
  return index === count - 1 ? SequenceIndicator.Last : SequenceIndicator.NotFirstNotLast;
}
