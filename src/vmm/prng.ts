/**
 * Deterministic 32-bit PRNG for workloads: xorshift32 (Marsaglia 2003, shifts 13/17/5) seeded through
 * a 32-bit finaliser so that nearby seeds give unrelated streams. Not cryptographic.
 */

/** A 32-bit avalanche mix (MurmurHash3 fmix32 constants). */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Xorshift32 {
  private state: number;

  /** `seed` is any integer; equal seeds give equal streams. */
  constructor(seed: number) {
    const s = mix32((seed >>> 0) ^ 0x9e3779b9);
    this.state = s === 0 ? 0x6d2b79f5 : s;
  }

  /** The generator's state (to save with a migrated guest). */
  saveState(): number {
    return this.state;
  }

  /** Continues from a saved state. @throws RangeError for a value that is not a non-zero u32. */
  loadState(state: number): void {
    if (!Number.isInteger(state) || state <= 0 || state > 0xffffffff)
      throw new RangeError(`PRNG state ${state}`);
    this.state = state;
  }

  /** Next value, uniform in 0..2^32-1. */
  next(): number {
    let s = this.state;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.state = s >>> 0;
    return this.state;
  }

  /** Uniform integer in 0..n-1 (n ≥ 1, up to 2^32; multiply-shift, negligible bias for small n). */
  nextBelow(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }
}
