/**
 * The workload verifier: proves that no acknowledged write was lost, no read returned torn or wrong
 * data, and no completion was posted twice or never — across migrations.
 *
 * Model, per LBA (of one namespace, within a range):
 *   issued[l]  generation of the newest write ever issued to l (0: never written)
 *   acked[l]   generation of the newest write acknowledged with success (0: none)
 *   writing[l] 1 while a write to l is outstanding (writes to one LBA never overlap: `canWrite`)
 * Each write of l takes generation issued[l] + 1 and fills its block with that pattern
 * (`block-pattern.ts`).
 *
 * A read of l issued when acked[l] = a and completing when issued[l] = i may legally return any
 * generation g with a ≤ g ≤ i — the last acknowledged one, or one written (or in flight) since, even if
 * not yet acknowledged or since superseded — and all-zero only when a = 0. Anything else (a stale
 * generation, another LBA's block, a torn block) is a bad read. A write that fails leaves acked[l]
 * alone; its generation stays in the allowed interval (it may or may not have reached the media),
 * which can only make the check more lenient, never flag a correct device.
 *
 * At the end, every LBA ever written is re-read: it must hold a valid generation g with
 * acked[l] ≤ g ≤ issued[l] (zero allowed only if nothing was acknowledged), else a lost write.
 *
 * Completions are tracked by a caller-chosen key per command (e.g. a workload slot): a completion for
 * a key that is not outstanding is a duplicate; keys still outstanding after the drain are missing.
 */
import { BLOCK_INVALID, BLOCK_ZERO, checkBlockPattern, writeBlockPattern } from "./block-pattern.ts";
import { assignTyped, base64ToTyped, typedToBase64 } from "./state-codec.ts";

export interface VerifierOptions {
  nsid: number;
  /** Logical block size, bytes (512..65536, a multiple of 4). */
  lbaBytes: number;
  /** First LBA the workload touches. */
  lbaStart: number;
  /** Number of LBAs the workload touches (≥ 1; the verifier keeps 9 bytes per LBA). */
  lbaCount: number;
  /** Do I/O errors (non-zero status) leave `verified` true? Default false. */
  allowIoErrors?: boolean;
  /** Failure details kept in the report. Default 32. */
  maxFailureDetails?: number;
}

export type VerifyFailureKind =
  | "bad-read"
  | "lost-write"
  | "duplicate-completion"
  | "missing-completion"
  | "io-error";

export interface VerifyFailure {
  kind: VerifyFailureKind;
  /** LBA concerned, when there is one. */
  lba?: number;
  detail: string;
}

export interface VerifyReport {
  /** No lost write, bad read, duplicate or missing completion (and no I/O error unless allowed). */
  verified: boolean;
  /** Workload commands completed (reads + writes, not the final read-back). */
  ops: number;
  reads: number;
  writes: number;
  /** Acknowledged blocks that the final read-back (or `checkFinal`) found older, zero or invalid. */
  lostWrites: number;
  /** Blocks of workload reads that were torn, wrong or stale. */
  badReads: number;
  duplicateCompletions: number;
  missingCompletions: number;
  /** Commands that completed with a non-zero status. */
  ioErrors: number;
  /** Blocks checked by the final read-back. */
  finalBlocksChecked: number;
  /** The first failures, for diagnosis. */
  failures: VerifyFailure[];
}

/** The one error type of the verifier: its caller broke a rule (a bug, never a device fault). */
export class VerifierError extends Error {
  override readonly name = "VerifierError";
  constructor(
    readonly code: "out-of-range" | "overlapping-write" | "key-reused" | "invalid-argument",
    message: string,
  ) {
    super(message);
  }
}

/** `Verifier.saveState()`: the per-LBA generations (base64 typed arrays), counters and failures. */
export interface VerifierState {
  nsid: number;
  lbaBytes: number;
  lbaStart: number;
  lbaCount: number;
  allowIoErrors: boolean;
  maxFailures: number;
  issued: string;
  acked: string;
  writing: string;
  outstandingKeys: string;
  outstandingKeyCount: number;
  outstandingCount: number;
  counters: {
    ops: number;
    reads: number;
    writes: number;
    lostWrites: number;
    badReads: number;
    duplicateCompletions: number;
    missingCompletions: number;
    ioErrors: number;
    finalBlocksChecked: number;
  };
  failures: VerifyFailure[];
}

export class Verifier {
  readonly nsid: number;
  readonly lbaBytes: number;
  readonly lbaStart: number;
  readonly lbaCount: number;
  private readonly allowIoErrors: boolean;
  private readonly maxFailures: number;

  private readonly issued: Uint32Array;
  private readonly acked: Uint32Array;
  private readonly writing: Uint8Array;
  private outstandingKeys = new Uint8Array(256);
  private outstandingCount = 0;

  private ops = 0;
  private reads = 0;
  private writes = 0;
  private lostWrites = 0;
  private badReads = 0;
  private duplicateCompletions = 0;
  private missingCompletions = 0;
  private ioErrors = 0;
  private finalBlocksChecked = 0;
  private readonly failures: VerifyFailure[] = [];

  constructor(options: VerifierOptions) {
    const { nsid, lbaBytes, lbaStart, lbaCount } = options;
    if (!Number.isInteger(lbaBytes) || lbaBytes < 512 || lbaBytes > 65536 || lbaBytes % 4 !== 0) {
      throw new VerifierError("invalid-argument", `lbaBytes ${lbaBytes} out of range`);
    }
    if (!Number.isSafeInteger(lbaStart) || lbaStart < 0 || !Number.isInteger(lbaCount) || lbaCount < 1) {
      throw new VerifierError("invalid-argument", `LBA range [${lbaStart}, +${lbaCount}) invalid`);
    }
    this.nsid = nsid;
    this.lbaBytes = lbaBytes;
    this.lbaStart = lbaStart;
    this.lbaCount = lbaCount;
    this.allowIoErrors = options.allowIoErrors ?? false;
    this.maxFailures = options.maxFailureDetails ?? 32;
    this.issued = new Uint32Array(lbaCount);
    this.acked = new Uint32Array(lbaCount);
    this.writing = new Uint8Array(lbaCount);
  }

  /** Everything the verifier knows, for a migrated guest (`guest-state.ts`). */
  saveState(): VerifierState {
    return {
      nsid: this.nsid,
      lbaBytes: this.lbaBytes,
      lbaStart: this.lbaStart,
      lbaCount: this.lbaCount,
      allowIoErrors: this.allowIoErrors,
      maxFailures: this.maxFailures,
      issued: typedToBase64(this.issued),
      acked: typedToBase64(this.acked),
      writing: typedToBase64(this.writing),
      outstandingKeys: typedToBase64(this.outstandingKeys),
      outstandingKeyCount: this.outstandingKeys.length,
      outstandingCount: this.outstandingCount,
      counters: {
        ops: this.ops,
        reads: this.reads,
        writes: this.writes,
        lostWrites: this.lostWrites,
        badReads: this.badReads,
        duplicateCompletions: this.duplicateCompletions,
        missingCompletions: this.missingCompletions,
        ioErrors: this.ioErrors,
        finalBlocksChecked: this.finalBlocksChecked,
      },
      failures: this.failures.slice(),
    };
  }

  /** A verifier continuing from `saveState()` output. @throws RangeError / VerifierError on a bad state. */
  static fromState(s: VerifierState): Verifier {
    const v = new Verifier({
      nsid: s.nsid,
      lbaBytes: s.lbaBytes,
      lbaStart: s.lbaStart,
      lbaCount: s.lbaCount,
      allowIoErrors: s.allowIoErrors,
      maxFailureDetails: s.maxFailures,
    });
    assignTyped(v.issued, base64ToTyped(Uint32Array, s.issued, s.lbaCount, "verifier issued"), "issued");
    assignTyped(v.acked, base64ToTyped(Uint32Array, s.acked, s.lbaCount, "verifier acked"), "acked");
    assignTyped(v.writing, base64ToTyped(Uint8Array, s.writing, s.lbaCount, "verifier writing"), "writing");
    v.outstandingKeys = base64ToTyped(
      Uint8Array,
      s.outstandingKeys,
      s.outstandingKeyCount,
      "outstanding keys",
    );
    v.outstandingCount = s.outstandingCount;
    const c = s.counters;
    v.ops = c.ops;
    v.reads = c.reads;
    v.writes = c.writes;
    v.lostWrites = c.lostWrites;
    v.badReads = c.badReads;
    v.duplicateCompletions = c.duplicateCompletions;
    v.missingCompletions = c.missingCompletions;
    v.ioErrors = c.ioErrors;
    v.finalBlocksChecked = c.finalBlocksChecked;
    v.failures.push(...s.failures);
    return v;
  }

  private index(lba: number, nlb: number): number {
    const i = lba - this.lbaStart;
    if (!(i >= 0 && nlb >= 1 && i + nlb <= this.lbaCount)) {
      throw new VerifierError("out-of-range", `LBAs [${lba}, +${nlb}) outside the verified range`);
    }
    return i;
  }

  private fail(kind: VerifyFailureKind, detail: string, lba?: number): void {
    if (this.failures.length < this.maxFailures) {
      this.failures.push(lba === undefined ? { kind, detail } : { kind, lba, detail });
    }
  }

  // ------------------------------------------------------------------ writes

  /** True when no write to any of these LBAs is outstanding. */
  canWrite(lba: number, nlb: number): boolean {
    const i = this.index(lba, nlb);
    const w = this.writing;
    for (let k = i; k < i + nlb; k++) if (w[k] !== 0) return false;
    return true;
  }

  /**
   * Starts a write of `nlb` blocks at `lba`: gives each block its next generation and writes the
   * patterns into `v[at .. at + nlb·lbaBytes)` (the caller makes that write visible to its dirty log).
   * @throws VerifierError `overlapping-write` if a write to one of them is outstanding.
   */
  beginWrite(lba: number, nlb: number, v: DataView, at: number): void {
    const i = this.index(lba, nlb);
    if (!this.canWrite(lba, nlb)) {
      throw new VerifierError(
        "overlapping-write",
        `write to [${lba}, +${nlb}) overlaps an outstanding write`,
      );
    }
    for (let k = 0; k < nlb; k++) {
      const gen = this.issued[i + k]! + 1;
      this.issued[i + k] = gen;
      this.writing[i + k] = 1;
      writeBlockPattern(v, at + k * this.lbaBytes, this.lbaBytes, this.nsid, lba + k, gen);
    }
  }

  /** The write started by `beginWrite` completed with `status` (0 = acknowledged). */
  completeWrite(lba: number, nlb: number, status: number): void {
    const i = this.index(lba, nlb);
    this.ops++;
    this.writes++;
    for (let k = i; k < i + nlb; k++) {
      this.writing[k] = 0;
      if (status === 0) this.acked[k] = this.issued[k]!;
    }
    if (status !== 0) this.ioError(status, lba);
  }

  /** The write started by `beginWrite` was never submitted (no slot): forget it. */
  cancelWrite(lba: number, nlb: number): void {
    const i = this.index(lba, nlb);
    for (let k = i; k < i + nlb; k++) this.writing[k] = 0;
  }

  // ------------------------------------------------------------------ reads

  /** Starts a read: records into `lowBounds[0..nlb)` the generation each block must at least have. */
  beginRead(lba: number, nlb: number, lowBounds: Uint32Array): void {
    const i = this.index(lba, nlb);
    for (let k = 0; k < nlb; k++) lowBounds[k] = this.acked[i + k]!;
  }

  /**
   * A read started by `beginRead` completed with `status`, its data at `v[at .. at + nlb·lbaBytes)`.
   * Returns the number of bad blocks (0 for a failed command: its data is not checked).
   */
  completeRead(
    lba: number,
    nlb: number,
    lowBounds: Uint32Array,
    status: number,
    v: DataView,
    at: number,
  ): number {
    const i = this.index(lba, nlb);
    this.ops++;
    this.reads++;
    if (status !== 0) {
      this.ioError(status, lba);
      return 0;
    }
    let bad = 0;
    for (let k = 0; k < nlb; k++) {
      const low = lowBounds[k]!;
      const high = this.issued[i + k]!;
      const g = checkBlockPattern(v, at + k * this.lbaBytes, this.lbaBytes, this.nsid, lba + k);
      if (g === BLOCK_ZERO ? low === 0 : g !== BLOCK_INVALID && g >= low && g <= high) continue;
      bad++;
      this.badReads++;
      this.fail("bad-read", `read found ${describe(g)}, allowed generations ${low}..${high}`, lba + k);
    }
    return bad;
  }

  // ------------------------------------------------------------------ final read-back

  /** True if some write to one of these LBAs was ever issued (the final read-back checks those). */
  anyWritten(lba: number, nlb: number): boolean {
    const i = this.index(lba, nlb);
    for (let k = i; k < i + nlb; k++) if (this.issued[k] !== 0) return true;
    return false;
  }

  /**
   * Final check of `nlb` blocks at `lba` read back with `status` into `v[at..]`, with no write
   * outstanding. Returns the number of lost blocks (acknowledged data not found). A failed read-back
   * counts every acknowledged block in it as lost (nothing proves it is there).
   */
  checkFinal(lba: number, nlb: number, status: number, v: DataView, at: number): number {
    const i = this.index(lba, nlb);
    let lost = 0;
    if (status !== 0) this.ioError(status, lba);
    for (let k = 0; k < nlb; k++) {
      const low = this.acked[i + k]!;
      const high = this.issued[i + k]!;
      if (high === 0) continue;
      this.finalBlocksChecked++;
      if (status !== 0) {
        if (low !== 0) {
          lost++;
          this.fail("lost-write", `read-back failed with status 0x${status.toString(16)}`, lba + k);
        }
        continue;
      }
      const g = checkBlockPattern(v, at + k * this.lbaBytes, this.lbaBytes, this.nsid, lba + k);
      if (g === BLOCK_ZERO ? low === 0 : g !== BLOCK_INVALID && g >= low && g <= high) continue;
      lost++;
      this.fail(
        "lost-write",
        `holds ${describe(g)}, acknowledged generation ${low} (issued up to ${high})`,
        lba + k,
      );
    }
    this.lostWrites += lost;
    return lost;
  }

  // ------------------------------------------------------------------ completions

  /** Records that the command with `key` (a non-negative integer < 2^24) was submitted. */
  commandIssued(key: number): void {
    if (!Number.isInteger(key) || key < 0 || key >= 1 << 24) {
      throw new VerifierError("invalid-argument", `completion key ${key} out of range`);
    }
    if (key >= this.outstandingKeys.length) {
      let n = this.outstandingKeys.length;
      while (n <= key) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.outstandingKeys);
      this.outstandingKeys = grown;
    }
    if (this.outstandingKeys[key] === 1) {
      throw new VerifierError("key-reused", `completion key ${key} is already outstanding`);
    }
    this.outstandingKeys[key] = 1;
    this.outstandingCount++;
  }

  /** Records a completion for `key`; returns false (and counts a duplicate) if it was not outstanding. */
  commandCompleted(key: number): boolean {
    if (this.outstandingKeys[key] !== 1) {
      this.noteDuplicateCompletion(`completion for key ${key}, which was not outstanding`);
      return false;
    }
    this.outstandingKeys[key] = 0;
    this.outstandingCount--;
    return true;
  }

  /** Forgets a key recorded by `commandIssued` whose command was never submitted. */
  commandCancelled(key: number): void {
    if (this.outstandingKeys[key] === 1) {
      this.outstandingKeys[key] = 0;
      this.outstandingCount--;
    }
  }

  /** Commands issued and not completed. */
  get outstanding(): number {
    return this.outstandingCount;
  }

  /** Counts duplicate completions seen elsewhere (e.g. by the driver, for a CID not outstanding). */
  noteDuplicateCompletion(detail: string, count = 1): void {
    if (count <= 0) return;
    this.duplicateCompletions += count;
    this.fail("duplicate-completion", detail);
  }

  /**
   * Ends completion tracking after the drain: every command still outstanding is missing.
   * Returns how many; they are forgotten (so calling this twice counts them once).
   */
  finishCompletions(): number {
    const n = this.outstandingCount;
    if (n > 0) {
      this.missingCompletions += n;
      this.fail("missing-completion", `${n} command(s) never completed`);
      this.outstandingKeys.fill(0);
      this.outstandingCount = 0;
    }
    return n;
  }

  private ioError(status: number, lba: number): void {
    this.ioErrors++;
    this.fail("io-error", `status 0x${status.toString(16)}`, lba);
  }

  report(): VerifyReport {
    return {
      verified:
        this.lostWrites === 0 &&
        this.badReads === 0 &&
        this.duplicateCompletions === 0 &&
        this.missingCompletions === 0 &&
        (this.allowIoErrors || this.ioErrors === 0),
      ops: this.ops,
      reads: this.reads,
      writes: this.writes,
      lostWrites: this.lostWrites,
      badReads: this.badReads,
      duplicateCompletions: this.duplicateCompletions,
      missingCompletions: this.missingCompletions,
      ioErrors: this.ioErrors,
      finalBlocksChecked: this.finalBlocksChecked,
      failures: this.failures.slice(),
    };
  }
}

function describe(g: number): string {
  if (g === BLOCK_ZERO) return "an unwritten (zero) block";
  if (g === BLOCK_INVALID) return "a torn or foreign block";
  return `generation ${g}`;
}
