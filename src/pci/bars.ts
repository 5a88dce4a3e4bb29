/**
 * 64-bit memory Base Address Registers (PCI Local Bus 3.0 §6.2.5.1).
 *
 * A 64-bit memory BAR occupies two consecutive dword slots (e.g. BAR0/BAR1, BAR4/BAR5). The low dword
 * carries the read-only flag bits — bit 0 = 0 (memory), bits 2:1 = 10b (64-bit), bit 3 = prefetchable —
 * and the address bits; the high dword carries address bits 63:32. Address bits below the size are
 * read-only 0, so the sizing protocol works by masks alone: software writes all-ones to both halves and
 * reads back `~(size - 1)` with the flag bits preserved. Unimplemented BAR slots read 0 and ignore
 * writes (no field is defined there).
 *
 * The same register format is used by the SR-IOV capability's VF BAR0..5, hence the configurable base
 * offset and name prefix.
 */
import type { ConfigField, ConfigSpace } from "./config-space.ts";
import { PciError } from "./errors.ts";

/** Memory space indicator (bit 0 = 0) and 64-bit type (bits 2:1 = 10b). */
export const BAR_MEMORY_TYPE_64 = 0x4;
export const BAR_PREFETCHABLE = 0x8;
/** Read-only flag bits of a memory BAR's low dword. */
export const BAR_FLAG_BITS = 0xf;
/** Smallest BAR this model accepts (PCIe recommends ≥ 4 KiB for memory BARs). */
export const BAR_MIN_SIZE_BYTES = 4096;

export interface BarSpec {
  /** Index of the low dword slot: 0, 2 or 4 (the pair index, index + 1). */
  index: number;
  /** Power of two, ≥ 4096, ≤ 2^52 (safe integer). */
  sizeBytes: number;
  /** Sets bit 3 (prefetchable). */
  prefetchable: boolean;
}

/** Returns a reason why `specs` is not a valid set of 64-bit BARs, or undefined if it is. */
export function checkBarSpecs(specs: readonly BarSpec[]): string | undefined {
  const used = new Set<number>();
  for (const b of specs) {
    if (b.index !== 0 && b.index !== 2 && b.index !== 4) return `BAR index ${b.index} is not 0, 2 or 4`;
    if (used.has(b.index)) return `BAR ${b.index} is defined twice`;
    used.add(b.index);
    if (!isPowerOfTwoSize(b.sizeBytes))
      return `BAR ${b.index} size ${b.sizeBytes} is not a power of two ≥ 4096`;
  }
  return undefined;
}

function isPowerOfTwoSize(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < BAR_MIN_SIZE_BYTES || n > 2 ** 52) return false;
  const b = BigInt(n);
  return (b & (b - 1n)) === 0n;
}

/** One implemented 64-bit memory BAR. */
export class MemoryBar64 {
  readonly index: number;
  readonly prefetchable: boolean;
  readonly lo: ConfigField;
  readonly hi: ConfigField;
  private size: number;

  constructor(cs: ConfigSpace, options: { baseOffset: number; namePrefix: string; spec: BarSpec }) {
    const { spec, baseOffset, namePrefix } = options;
    this.index = spec.index;
    this.prefetchable = spec.prefetchable;
    this.size = spec.sizeBytes;
    const flags = BAR_MEMORY_TYPE_64 | (spec.prefetchable ? BAR_PREFETCHABLE : 0);
    const { loMask, hiMask } = sizeMasks(spec.sizeBytes);
    const at = baseOffset + 4 * spec.index;
    // Address bits are not sticky: an FLR returns the BAR to 0 (flags only).
    this.lo = cs.defineField({
      name: `${namePrefix}${spec.index}.lo`,
      offset: at,
      width: 4,
      reset: flags,
      writeMask: loMask,
    });
    this.hi = cs.defineField({
      name: `${namePrefix}${spec.index}.hi`,
      offset: at + 4,
      width: 4,
      writeMask: hiMask,
    });
  }

  /** Size in bytes now in force. */
  get sizeBytes(): number {
    return this.size;
  }

  /** Base address programmed by software (flag bits removed). */
  address(): bigint {
    return (BigInt(this.hi.get()) << 32n) | BigInt((this.lo.get() & ~BAR_FLAG_BITS) >>> 0);
  }

  /**
   * Changes the decoded size (SR-IOV: a VF BAR is at least one System Page). Address bits that become
   * part of the offset within the BAR are cleared, as a hardware BAR would no longer hold them.
   */
  setSizeBytes(sizeBytes: number): void {
    if (!isPowerOfTwoSize(sizeBytes))
      throw new PciError("layout", `BAR size ${sizeBytes} is not a power of two`);
    this.size = sizeBytes;
    const { loMask, hiMask } = sizeMasks(sizeBytes);
    this.lo.setWriteMask(loMask);
    this.hi.setWriteMask(hiMask);
    this.lo.set((this.lo.get() & (loMask | BAR_FLAG_BITS)) >>> 0);
    this.hi.set((this.hi.get() & hiMask) >>> 0);
  }
}

function sizeMasks(sizeBytes: number): { loMask: number; hiMask: number } {
  const mask = ~(BigInt(sizeBytes) - 1n) & 0xffff_ffff_ffff_ffffn;
  return {
    loMask: Number(mask & 0xffff_fff0n),
    hiMask: Number(mask >> 32n),
  };
}

/** The six BAR slots of one register block (Type 0 header at 0x10, or SR-IOV VF BARs at cap + 0x24). */
export class BarSet {
  private readonly bars = new Map<number, MemoryBar64>();

  /**
   * Defines the implemented BARs. Throws `PciError("invalid-descriptor")` for a bad spec (our bug).
   * @param options.baseOffset config offset of BAR0 of this block.
   * @param options.namePrefix field name prefix, e.g. `"bar"` → `"bar0.lo"`.
   */
  constructor(
    cs: ConfigSpace,
    specs: readonly BarSpec[],
    options: { baseOffset: number; namePrefix: string },
  ) {
    const problem = checkBarSpecs(specs);
    if (problem !== undefined) throw new PciError("invalid-descriptor", problem);
    for (const spec of specs) {
      this.bars.set(spec.index, new MemoryBar64(cs, { ...options, spec }));
    }
  }

  /** The BAR whose low dword is slot `index`, if implemented. */
  bar(index: number): MemoryBar64 | undefined {
    return this.bars.get(index);
  }

  /** Implemented BARs in index order. */
  list(): MemoryBar64[] {
    return [...this.bars.values()].sort((a, b) => a.index - b.index);
  }

  /** Address of the 64-bit BAR starting at slot `index`; undefined if that slot does not start an implemented BAR. */
  barAddress(index: number): bigint | undefined {
    return this.bars.get(index)?.address();
  }
}
