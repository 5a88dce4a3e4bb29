/**
 * Latency histogram with power-of-two microsecond buckets: bucket i counts latencies in
 * [2^i, 2^(i+1)) µs (bucket 0 also takes everything below 1 µs; the last bucket everything above).
 * Recording allocates nothing.
 */
import { assignTyped, base64ToTyped, typedToBase64 } from "./state-codec.ts";
export const LATENCY_BUCKETS = 32;

export interface LatencySummary {
  /** Samples recorded. */
  count: number;
  meanUs: number;
  maxUs: number;
  /** Upper bounds of the buckets holding the 50th / 99th / 99.9th percentile, µs. */
  p50Us: number;
  p99Us: number;
  p999Us: number;
  /** Count per bucket; bucket i covers [2^i, 2^(i+1)) µs. */
  buckets: number[];
}

export interface LatencyHistogramState {
  counts: string;
  count: number;
  sumUs: number;
  maxUs: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(LATENCY_BUCKETS);
  private count = 0;
  private sumUs = 0;
  private maxUs = 0;

  /** Records one latency in microseconds. */
  record(us: number): void {
    const i = us < 1 ? 0 : Math.min(LATENCY_BUCKETS - 1, 31 - Math.clz32(us));
    this.counts[i]!++;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  /** Saved form (a migrated guest keeps its latency record). */
  saveState(): LatencyHistogramState {
    return { counts: typedToBase64(this.counts), count: this.count, sumUs: this.sumUs, maxUs: this.maxUs };
  }

  loadState(s: LatencyHistogramState): void {
    assignTyped(
      this.counts,
      base64ToTyped(Float64Array, s.counts, LATENCY_BUCKETS, "latency counts"),
      "latency counts",
    );
    this.count = s.count;
    this.sumUs = s.sumUs;
    this.maxUs = s.maxUs;
  }

  private percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(p * this.count);
    let seen = 0;
    for (let i = 0; i < LATENCY_BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(2 ** (i + 1), Math.max(this.maxUs, 1));
    }
    return this.maxUs;
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      meanUs: this.count === 0 ? 0 : this.sumUs / this.count,
      maxUs: this.maxUs,
      p50Us: this.percentile(0.5),
      p99Us: this.percentile(0.99),
      p999Us: this.percentile(0.999),
      buckets: Array.from(this.counts),
    };
  }
}
