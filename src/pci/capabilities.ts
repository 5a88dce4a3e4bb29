/**
 * Capability lists: placement with correct next pointers, and a walker.
 *
 * Standard capabilities (PCI Local Bus 3.0 §6.7) live in 0x40..0xFF; each starts with
 * `{ id u8, next u8 }`, the chain starts at the Capabilities Pointer (0x34) and ends with next = 0.
 * Extended capabilities (PCIe Base §7.6) live in 0x100..0xFFF; each starts with a dword
 * `{ id [15:0], version [19:16], next [31:20] }`, the chain starts at 0x100 and ends with next = 0.
 * With no extended capability, the dword at 0x100 reads 0.
 */
import type { ConfigSpace } from "./config-space.ts";
import { PciError } from "./errors.ts";
import { PCI_STD_HEADER_BYTES } from "./type0-header.ts";

export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_EXT_CAP_ID_ARI = 0x000e;
export const PCI_EXT_CAP_ID_SRIOV = 0x0010;

/** First extended capability offset. */
export const PCI_EXT_CAP_START = 0x100;
const STD_CAP_END = 0x100;
const EXT_CAP_END = 0x1000;

/** A standard capability: defines its registers after its 2-byte header. */
export interface Capability {
  /** Field name prefix (e.g. `"pcie"`), also the key of its offset. */
  readonly name: string;
  readonly id: number;
  /** Whole structure, header included; a multiple of 4. */
  readonly sizeBytes: number;
  /** Defines the registers at `offset + 2 ..`; the header is written by the builder. */
  define(cs: ConfigSpace, offset: number): void;
}

/** An extended capability: defines its registers after its 4-byte header. */
export interface ExtendedCapability {
  readonly name: string;
  readonly id: number;
  readonly version: number;
  readonly sizeBytes: number;
  define(cs: ConfigSpace, offset: number): void;
}

export interface CapabilityLayout {
  /** Value for the Capabilities Pointer register (0 if there is no standard capability). */
  capabilitiesPointer: number;
  /** Offset of each capability by name. */
  offsets: Map<string, number>;
}

/**
 * Places the capabilities in order (dword-aligned, packed), writes their headers as read-only fields
 * (`<name>.header`) and lets each define its registers. Throws `PciError("layout")` if they do not fit.
 */
export function buildCapabilityList(
  cs: ConfigSpace,
  standard: readonly Capability[],
  extended: readonly ExtendedCapability[],
): CapabilityLayout {
  const offsets = new Map<string, number>();
  const stdAt: number[] = [];
  let at = PCI_STD_HEADER_BYTES;
  for (const cap of standard) {
    checkSize(cap.name, cap.sizeBytes, 2);
    stdAt.push(at);
    at += cap.sizeBytes;
  }
  if (at > STD_CAP_END)
    throw new PciError("layout", `standard capabilities end at 0x${at.toString(16)} > 0x100`);
  const extAt: number[] = [];
  at = PCI_EXT_CAP_START;
  for (const cap of extended) {
    checkSize(cap.name, cap.sizeBytes, 4);
    extAt.push(at);
    at += cap.sizeBytes;
  }
  if (at > EXT_CAP_END)
    throw new PciError("layout", `extended capabilities end at 0x${at.toString(16)} > 0x1000`);

  standard.forEach((cap, i) => {
    const offset = stdAt[i]!;
    const next = stdAt[i + 1] ?? 0;
    cs.defineField({ name: `${cap.name}.header`, offset, width: 2, reset: (cap.id & 0xff) | (next << 8) });
    offsets.set(cap.name, offset);
    cap.define(cs, offset);
  });
  extended.forEach((cap, i) => {
    const offset = extAt[i]!;
    const next = extAt[i + 1] ?? 0;
    const header = ((cap.id & 0xffff) | ((cap.version & 0xf) << 16) | (next << 20)) >>> 0;
    cs.defineField({ name: `${cap.name}.header`, offset, width: 4, reset: header });
    offsets.set(cap.name, offset);
    cap.define(cs, offset);
  });
  return { capabilitiesPointer: stdAt[0] ?? 0, offsets };
}

function checkSize(name: string, sizeBytes: number, minBytes: number): void {
  if (!Number.isInteger(sizeBytes) || sizeBytes < minBytes || sizeBytes % 4 !== 0) {
    throw new PciError("layout", `capability ${name} has size ${sizeBytes}, not a multiple of 4`);
  }
}

/** What a walk of the two capability lists found. */
export interface CapabilityWalk {
  standard: { id: number; offset: number }[];
  extended: { id: number; version: number; offset: number }[];
  /** Set if a list was malformed (loop, pointer out of its area, misaligned); the walk stopped there. */
  problem?: string;
}

/** Anything that reads config space like `ConfigSpace.read`. */
export interface ConfigReader {
  read(offset: number, sizeBytes: number): number | undefined;
}

/**
 * Walks both capability lists as system software would (Status.Capabilities List, then 0x34; then
 * 0x100), refusing loops and out-of-area pointers.
 */
export function walkCapabilities(config: ConfigReader): CapabilityWalk {
  const walk: CapabilityWalk = { standard: [], extended: [] };
  const status = config.read(0x06, 2) ?? 0;
  if ((status & 0x10) !== 0) {
    const seen = new Set<number>();
    let at = (config.read(0x34, 1) ?? 0) & 0xfc;
    while (at !== 0) {
      if (at < PCI_STD_HEADER_BYTES || at > STD_CAP_END - 2 || seen.has(at)) {
        walk.problem = `bad standard capability pointer 0x${at.toString(16)}`;
        return walk;
      }
      seen.add(at);
      const header = config.read(at, 2) ?? 0;
      walk.standard.push({ id: header & 0xff, offset: at });
      at = (header >>> 8) & 0xfc;
    }
  }
  const seen = new Set<number>();
  let at = PCI_EXT_CAP_START;
  while (true) {
    const header = config.read(at, 4) ?? 0;
    if (header === 0) break;
    walk.extended.push({ id: header & 0xffff, version: (header >>> 16) & 0xf, offset: at });
    seen.add(at);
    const next = header >>> 20;
    if (next === 0) break;
    if (next < PCI_EXT_CAP_START || next > EXT_CAP_END - 4 || next % 4 !== 0 || seen.has(next)) {
      walk.problem = `bad extended capability pointer 0x${next.toString(16)}`;
      return walk;
    }
    at = next;
  }
  return walk;
}
