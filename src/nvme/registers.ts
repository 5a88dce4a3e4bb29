/**
 * NVMe controller properties (registers) in BAR0 (NVMe Base 2.1 §3.1.4, Figure "Controller Properties").
 * Offsets in bytes from the start of BAR0; field positions per register figure.
 */
export const Reg = {
  /** Controller Capabilities, 8 bytes, RO. */
  CAP: 0x00,
  /** Version, 4 bytes, RO. */
  VS: 0x08,
  /** Interrupt Mask Set, 4 bytes, RW1S (not used with MSI-X). */
  INTMS: 0x0c,
  /** Interrupt Mask Clear, 4 bytes, RW1C (not used with MSI-X). */
  INTMC: 0x10,
  /** Controller Configuration, 4 bytes, RW. */
  CC: 0x14,
  /** Controller Status, 4 bytes, RO (NSSRO RW1C). */
  CSTS: 0x1c,
  /** NVM Subsystem Reset, 4 bytes, RW; write 0x4E564D65 ("NVMe"). */
  NSSR: 0x20,
  /** Admin Queue Attributes, 4 bytes, RW. */
  AQA: 0x24,
  /** Admin Submission Queue Base Address, 8 bytes, RW. */
  ASQ: 0x28,
  /** Admin Completion Queue Base Address, 8 bytes, RW. */
  ACQ: 0x30,
  /** Controller Memory Buffer Location (0: no CMB). */
  CMBLOC: 0x38,
  /** Controller Memory Buffer Size (0: no CMB). */
  CMBSZ: 0x3c,
} as const;

/** First doorbell register. */
export const DOORBELL_BASE = 0x1000;
/** NSSR value that initiates an NVM Subsystem Reset ("NVMe"). */
export const NSSR_RESET_VALUE = 0x4e564d65;

/** Byte offset of the Submission Queue y Tail Doorbell, with CAP.DSTRD. */
export function sqTailDoorbell(qid: number, dstrd: number): number {
  return DOORBELL_BASE + 2 * qid * (4 << dstrd);
}
/** Byte offset of the Completion Queue y Head Doorbell, with CAP.DSTRD. */
export function cqHeadDoorbell(qid: number, dstrd: number): number {
  return DOORBELL_BASE + (2 * qid + 1) * (4 << dstrd);
}

/** CAP fields (Figure "Offset 0h: CAP"). The register is 64 bits; held here as two 32-bit halves. */
export interface Capabilities {
  /** Maximum Queue Entries Supported, 0's based (bits 15:0). */
  mqes: number;
  /** Contiguous Queues Required (bit 16). */
  cqr: boolean;
  /** Arbitration Mechanism Supported (bits 18:17): bit 0 WRR with urgent, bit 1 vendor. */
  ams: number;
  /** Timeout, in 500 ms units (bits 31:24). */
  to: number;
  /** Doorbell Stride, stride = 2^(2+DSTRD) bytes (bits 35:32). */
  dstrd: number;
  /** NVM Subsystem Reset Supported (bit 36). */
  nssrs: boolean;
  /** Command Sets Supported (bits 44:37); bit 0 = NVM command set. */
  css: number;
  /** Memory Page Size Minimum, 2^(12+MPSMIN) (bits 51:48). */
  mpsmin: number;
  /** Memory Page Size Maximum, 2^(12+MPSMAX) (bits 55:52). */
  mpsmax: number;
}

export function encodeCap(c: Capabilities): bigint {
  return (
    BigInt(c.mqes & 0xffff) |
    (BigInt(c.cqr ? 1 : 0) << 16n) |
    (BigInt(c.ams & 0x3) << 17n) |
    (BigInt(c.to & 0xff) << 24n) |
    (BigInt(c.dstrd & 0xf) << 32n) |
    (BigInt(c.nssrs ? 1 : 0) << 36n) |
    (BigInt(c.css & 0xff) << 37n) |
    (BigInt(c.mpsmin & 0xf) << 48n) |
    (BigInt(c.mpsmax & 0xf) << 52n)
  );
}

export function decodeCap(v: bigint): Capabilities {
  const n = (shift: bigint, mask: bigint) => Number((v >> shift) & mask);
  return {
    mqes: n(0n, 0xffffn),
    cqr: n(16n, 1n) === 1,
    ams: n(17n, 3n),
    to: n(24n, 0xffn),
    dstrd: n(32n, 0xfn),
    nssrs: n(36n, 1n) === 1,
    css: n(37n, 0xffn),
    mpsmin: n(48n, 0xfn),
    mpsmax: n(52n, 0xfn),
  };
}

/** Version register value for major.minor.tertiary. */
export function encodeVs(major: number, minor: number, tertiary = 0): number {
  return ((major << 16) | (minor << 8) | tertiary) >>> 0;
}

/** CC fields (Figure "Offset 14h: CC"). */
export const CC = {
  EN: 1 << 0,
  /** I/O Command Set Selected, bits 6:4. */
  cssOf: (cc: number) => (cc >>> 4) & 0x7,
  /** Memory Page Size, 2^(12+MPS), bits 10:7. */
  mpsOf: (cc: number) => (cc >>> 7) & 0xf,
  /** Arbitration Mechanism Selected, bits 13:11. */
  amsOf: (cc: number) => (cc >>> 11) & 0x7,
  /** Shutdown Notification, bits 15:14: 00b none, 01b normal, 10b abrupt. */
  shnOf: (cc: number) => (cc >>> 14) & 0x3,
  /** I/O Submission Queue Entry Size, 2^n bytes, bits 19:16. */
  iosqesOf: (cc: number) => (cc >>> 16) & 0xf,
  /** I/O Completion Queue Entry Size, 2^n bytes, bits 23:20. */
  iocqesOf: (cc: number) => (cc >>> 20) & 0xf,
  make(f: {
    en: boolean;
    css?: number;
    mps?: number;
    ams?: number;
    shn?: number;
    iosqes?: number;
    iocqes?: number;
  }) {
    return (
      ((f.en ? 1 : 0) |
        ((f.css ?? 0) << 4) |
        ((f.mps ?? 0) << 7) |
        ((f.ams ?? 0) << 11) |
        ((f.shn ?? 0) << 14) |
        ((f.iosqes ?? 6) << 16) |
        ((f.iocqes ?? 4) << 20)) >>>
      0
    );
  },
} as const;

/** CSTS bits (Figure "Offset 1Ch: CSTS"). */
export const CSTS = {
  RDY: 1 << 0,
  /** Controller Fatal Status. */
  CFS: 1 << 1,
  /** Shutdown Status, bits 3:2: 00b normal, 01b occurring, 10b complete. */
  SHST_SHIFT: 2,
  SHST_MASK: 0x3 << 2,
  /** NVM Subsystem Reset Occurred (RW1C). */
  NSSRO: 1 << 4,
  /** Processing Paused. */
  PP: 1 << 5,
} as const;

export const ShutdownNotification = { None: 0, Normal: 1, Abrupt: 2 } as const;
export const ShutdownStatus = { Normal: 0, Occurring: 1, Complete: 2 } as const;

/** AQA fields: Admin Submission Queue Size bits 11:0, Admin Completion Queue Size bits 27:16, both 0's based. */
export const AQA = {
  asqsOf: (aqa: number) => aqa & 0xfff,
  acqsOf: (aqa: number) => (aqa >>> 16) & 0xfff,
  make: (asqs0: number, acqs0: number) => ((asqs0 & 0xfff) | ((acqs0 & 0xfff) << 16)) >>> 0,
} as const;
