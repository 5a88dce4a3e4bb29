/**
 * The verifier's block pattern: every logical block the workload writes carries who it is and which
 * write put it there, so a read can tell a current block from a stale, misdirected or torn one.
 *
 *   offset  size  field
 *   0       4     magic 474D564Eh (little-endian, so the bytes read "NVMG")
 *   4       4     nsid
 *   8       8     lba
 *   16      4     generation (≥ 1; the n-th write of this LBA)
 *   20      4     seed = mix(nsid, lba, generation)
 *   24      …     fill: xorshift32 stream from `seed`, one little-endian dword at a time
 *
 * Every byte depends on (nsid, lba, generation), so a block assembled from two writes (torn) or one
 * written for another LBA fails the check. A block never written reads as all zeroes.
 */
import { mix32 } from "./prng.ts";

export const PATTERN_MAGIC = 0x474d564e;
export const PATTERN_HEADER_BYTES = 24;

/** `checkBlockPattern` result for an all-zero block. */
export const BLOCK_ZERO = 0;
/** `checkBlockPattern` result for a block that is neither zero nor a valid pattern for that LBA. */
export const BLOCK_INVALID = -1;

function patternSeed(nsid: number, lba: number, generation: number): number {
  const lbaLo = lba >>> 0;
  const lbaHi = Math.floor(lba / 0x1_0000_0000) >>> 0;
  let h = mix32(nsid ^ 0x3c6ef372);
  h = mix32(h ^ lbaLo);
  h = mix32(h ^ Math.imul(lbaHi, 0x27d4eb2f));
  h = mix32(h ^ generation);
  return h === 0 ? 1 : h;
}

/** Writes the pattern of (nsid, lba, generation) into `lbaBytes` bytes at `v[at..]`. */
export function writeBlockPattern(
  v: DataView,
  at: number,
  lbaBytes: number,
  nsid: number,
  lba: number,
  generation: number,
): void {
  const seed = patternSeed(nsid, lba, generation);
  v.setUint32(at, PATTERN_MAGIC, true);
  v.setUint32(at + 4, nsid, true);
  v.setUint32(at + 8, lba >>> 0, true);
  v.setUint32(at + 12, Math.floor(lba / 0x1_0000_0000), true);
  v.setUint32(at + 16, generation, true);
  v.setUint32(at + 20, seed, true);
  let s = seed;
  for (let o = at + PATTERN_HEADER_BYTES; o < at + lbaBytes; o += 4) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    v.setUint32(o, s >>> 0, true);
  }
}

/**
 * Checks the block at `v[at .. at+lbaBytes)` against LBA `lba` of `nsid`: returns its generation
 * (≥ 1) when it is a complete, valid pattern for that LBA; BLOCK_ZERO when every byte is 0;
 * BLOCK_INVALID otherwise (torn, corrupt, or written for another LBA/namespace).
 */
export function checkBlockPattern(
  v: DataView,
  at: number,
  lbaBytes: number,
  nsid: number,
  lba: number,
): number {
  if (v.getUint32(at, true) !== PATTERN_MAGIC) return isZero(v, at, lbaBytes) ? BLOCK_ZERO : BLOCK_INVALID;
  const generation = v.getUint32(at + 16, true);
  if (
    v.getUint32(at + 4, true) !== nsid ||
    v.getUint32(at + 8, true) !== lba >>> 0 ||
    v.getUint32(at + 12, true) !== Math.floor(lba / 0x1_0000_0000) ||
    generation === 0
  ) {
    return BLOCK_INVALID;
  }
  const seed = patternSeed(nsid, lba, generation);
  if (v.getUint32(at + 20, true) !== seed) return BLOCK_INVALID;
  let s = seed;
  for (let o = at + PATTERN_HEADER_BYTES; o < at + lbaBytes; o += 4) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    if (v.getUint32(o, true) !== s >>> 0) return BLOCK_INVALID;
  }
  return generation;
}

function isZero(v: DataView, at: number, lbaBytes: number): boolean {
  for (let o = at; o < at + lbaBytes; o += 4) if (v.getUint32(o, true) !== 0) return false;
  return true;
}
