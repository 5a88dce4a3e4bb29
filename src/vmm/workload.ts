/**
 * I/O workload generator with built-in verification, run by the guest on a `GuestNvmeDriver`.
 *
 * Each of `queues` I/O queues keeps `queueDepth` commands outstanding: every completion immediately
 * issues the next command from the same slot (same data buffer), so the hot path allocates nothing.
 * Reads vs writes and LBAs come from a seeded xorshift32 stream per queue (`seed`), so a run is
 * reproducible up to completion order. Writes never overlap an outstanding write to the same LBA (the
 * verifier requires it); a write that would is turned into a read after a few re-picks.
 *
 * Latencies are taken with the driver's batch clock (`GuestNvmeDriver.nowMs`): one clock read per
 * interrupt or poll batch rather than two per command, so a latency is resolved to the batch.
 *
 * Lifecycle: `start()` → running until `ops` commands were issued or `durationMs` elapsed (or
 * `stop()`), then drained → `finished` resolves with the stats. `verify()` then reads back every LBA
 * ever written and returns the verifier's report.
 */
import type { GuestMemory } from "./guest-memory.ts";
import { LatencyHistogram, type LatencyHistogramState, type LatencySummary } from "./latency-histogram.ts";
import type { CompletionCallback, GuestNvmeDriver } from "./nvme-driver.ts";
import { Xorshift32 } from "./prng.ts";
import { Verifier, type VerifierState, type VerifyReport } from "./verifier.ts";

export interface WorkloadOptions {
  /** "random": uniformly chosen block-aligned LBAs; "sequential": one cursor, wrapping. */
  pattern: "random" | "sequential";
  /** Share of reads, percent, 0..100. */
  readPercent: number;
  /** Bytes per command: a multiple of the LBA size, at most the driver's `maxTransferBytes`. */
  blockBytes: number;
  /** Commands outstanding per queue, 1..the queue's depth. */
  queueDepth: number;
  /** I/O queues used: qids `firstQid .. firstQid + queues − 1`. */
  queues: number;
  /** First qid used. Default 1. */
  firstQid?: number;
  /** Namespace. Default the lowest active NSID. */
  nsid?: number;
  /** LBAs used: [first LBA, count]. Default the whole namespace. Count ≥ blockBytes / LBA size. */
  lbaRange?: readonly [start: number, count: number];
  /** Commands to issue in total (all queues), then drain. Default unlimited. */
  ops?: number;
  /** Run time, ms, then drain. Default unlimited (until `ops` or `stop()`). */
  durationMs?: number;
  /** PRNG seed (any integer). */
  seed: number;
  /** Write verifiable patterns and check every read. Default true. */
  verify?: boolean;
  /** How long `stop()`/`verify()` wait for outstanding commands, ms. Default 10000. */
  drainTimeoutMs?: number;
  /** Do I/O errors leave the verification report `verified`? Default false. */
  allowIoErrors?: boolean;
  /**
   * Continue an earlier run's verifier (same namespace, LBA size and LBA range) instead of a fresh
   * one, which assumes the range starts unwritten. Default: a fresh verifier.
   */
  verifier?: Verifier;
}

export interface WorkloadStats {
  /** Commands completed (reads + writes). */
  ops: number;
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  /** Commands that completed with a non-zero status. */
  errors: number;
  /** Commands still outstanding when the drain timed out. */
  missingCompletions: number;
  /** Completions that arrived after their command was counted missing. */
  lateCompletions: number;
  /** Completions for a workload slot with nothing outstanding (the driver's own count is separate). */
  duplicateCompletions: number;
  /** From `start()` to the last completion (or the end of the drain), ms. */
  elapsedMs: number;
  iops: number;
  mibPerSecond: number;
  latency: LatencySummary;
}

export class WorkloadError extends Error {
  override readonly name = "WorkloadError";
  constructor(
    readonly code: "invalid-argument" | "not-ready" | "state",
    message: string,
  ) {
    super(message);
  }
}

interface IoContext {
  readonly index: number;
  readonly qid: number;
  readonly rng: Xorshift32;
  readonly bufferGpa: number;
  readonly lowBounds: Uint32Array;
  lba: number;
  nlb: number;
  write: boolean;
  final: boolean;
  outstanding: boolean;
  /** Outstanding when a drain timed out (counted missing); a later completion is only "late". */
  abandoned: boolean;
  startMs: number;
  onComplete: CompletionCallback;
}

type Phase = "new" | "running" | "draining" | "stopped" | "verifying" | "verified";

/** `Workload.saveState()`: options, buffer GPAs, per-context commands, counters, the verifier. */
export interface WorkloadState {
  options: Omit<WorkloadOptions, "verifier">;
  buffers: number[];
  /** PRNG state per queue (index = qid − firstQid). */
  rngStates: number[];
  contexts: {
    lba: number;
    nlb: number;
    write: boolean;
    final: boolean;
    outstanding: boolean;
    abandoned: boolean;
    /** ms since submission (outstanding commands). */
    ageMs: number;
    lowBounds: number[];
  }[];
  phase: "running" | "draining";
  issuing: boolean;
  issued: number;
  outstanding: number;
  seqCursor: number;
  finalCursor: number;
  parked: number[];
  histogram: LatencyHistogramState;
  counters: {
    ops: number;
    bytesRead: number;
    bytesWritten: number;
    lateCompletions: number;
    reads: number;
    writes: number;
    errors: number;
    missing: number;
    duplicates: number;
  };
  elapsedMs: number;
  sinceLastCompletionMs: number;
  duplicatesAtStart: number;
  durationLeftMs: number | null;
  verifier: VerifierState | null;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 10000;

export class Workload {
  readonly nsid: number;
  readonly lbaBytes: number;
  readonly lbaStart: number;
  readonly lbaCount: number;
  /** Blocks per command. */
  readonly nlb: number;
  /** The verifier (undefined with `verify: false`). */
  readonly verifier: Verifier | undefined;
  /** Resolves once the run has ended (ops/duration reached, or stopped) and drained. */
  readonly finished: Promise<WorkloadStats>;

  private readonly options: WorkloadOptions;
  private readonly drainTimeoutMs: number;
  private readonly contexts: IoContext[] = [];
  private readonly buffers: number[] = [];
  private readonly slotsInRange: number;
  private phase: Phase = "new";
  private issuing = false;
  private issued = 0;
  private outstanding = 0;
  private seqCursor = 0;
  private finalCursor = 0;
  private readonly parked: IoContext[] = [];
  private parkTimer: NodeJS.Timeout | undefined;
  private durationTimer: NodeJS.Timeout | undefined;
  private drainWaiters: Array<() => void> = [];
  private resolveFinished!: (s: WorkloadStats) => void;
  private duplicatesAtStart = 0;
  private restoredDurationLeftMs: number | null = null;
  private migratedAway = false;
  /** "ctx:<index>" of each context's completion callback (the saved guest names commands so). */
  private readonly tokenByCallback = new Map<CompletionCallback, string>();
  private get firstQid(): number {
    return this.options.firstQid ?? 1;
  }

  private readonly histogram = new LatencyHistogram();
  private ops = 0;
  private bytesRead = 0;
  private bytesWritten = 0;
  /** Completions that arrived after their command was counted missing. */
  private lateCompletions = 0;
  private reads = 0;
  private writes = 0;
  private errors = 0;
  private missing = 0;
  private duplicates = 0;
  private startMs = 0;
  private lastCompletionMs = 0;

  constructor(
    private readonly driver: GuestNvmeDriver,
    private readonly mem: GuestMemory,
    options: WorkloadOptions,
    restored?: WorkloadState,
  ) {
    this.options = options;
    this.finished = new Promise((resolve) => {
      this.resolveFinished = resolve;
    });
    if (!driver.ready) throw new WorkloadError("not-ready", "the driver is not ready");
    const nsid = options.nsid ?? Math.min(...driver.namespaces.keys());
    const ns = driver.namespaces.get(nsid);
    if (ns === undefined) throw new WorkloadError("invalid-argument", `no namespace ${nsid}`);
    this.nsid = nsid;
    this.lbaBytes = ns.lbaBytes;
    const [lbaStart, lbaCount] = options.lbaRange ?? [0, ns.nsze];
    const bad = (what: string): never => {
      throw new WorkloadError("invalid-argument", what);
    };
    if (
      !Number.isInteger(options.blockBytes) ||
      options.blockBytes <= 0 ||
      options.blockBytes % ns.lbaBytes !== 0
    ) {
      bad(`blockBytes ${options.blockBytes} is not a multiple of the ${ns.lbaBytes}-byte LBA size`);
    }
    if (options.blockBytes > driver.maxTransferBytes) {
      bad(
        `blockBytes ${options.blockBytes} exceeds the driver's ${driver.maxTransferBytes}-byte transfer limit`,
      );
    }
    this.nlb = options.blockBytes / ns.lbaBytes;
    if (
      !Number.isInteger(lbaStart) ||
      lbaStart < 0 ||
      !Number.isInteger(lbaCount) ||
      lbaStart + lbaCount > ns.nsze
    ) {
      bad(`LBA range [${lbaStart}, +${lbaCount}) is outside namespace ${nsid} (${ns.nsze} blocks)`);
    }
    if (lbaCount < this.nlb) bad(`LBA range of ${lbaCount} blocks is smaller than one command`);
    this.lbaStart = lbaStart;
    this.lbaCount = lbaCount;
    this.slotsInRange = Math.floor(lbaCount / this.nlb);
    if (!(options.readPercent >= 0 && options.readPercent <= 100)) bad(`readPercent ${options.readPercent}`);
    const firstQid = options.firstQid ?? 1;
    if (
      !Number.isInteger(options.queues) ||
      options.queues < 1 ||
      firstQid + options.queues - 1 > driver.ioQueueCount
    ) {
      bad(`queues ${firstQid}..${firstQid + options.queues - 1}: the driver has ${driver.ioQueueCount}`);
    }
    for (let qid = firstQid; qid < firstQid + options.queues; qid++) {
      if (
        !Number.isInteger(options.queueDepth) ||
        options.queueDepth < 1 ||
        options.queueDepth > driver.ioQueueDepth(qid)
      ) {
        bad(`queueDepth ${options.queueDepth}: queue ${qid} holds ${driver.ioQueueDepth(qid)}`);
      }
    }
    if (options.ops !== undefined && !(Number.isInteger(options.ops) && options.ops >= 0))
      bad(`ops ${options.ops}`);
    if (options.durationMs !== undefined && !(options.durationMs >= 0))
      bad(`durationMs ${options.durationMs}`);
    this.drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    const given = options.verifier;
    if (
      given !== undefined &&
      (given.nsid !== nsid ||
        given.lbaBytes !== ns.lbaBytes ||
        given.lbaStart !== lbaStart ||
        given.lbaCount !== lbaCount)
    ) {
      bad("the given verifier covers another namespace or LBA range");
    }
    if (given !== undefined && given.outstanding > 0 && restored === undefined)
      bad("the given verifier has commands outstanding");
    this.verifier =
      options.verify === false
        ? undefined
        : (given ??
          new Verifier({
            nsid,
            lbaBytes: ns.lbaBytes,
            lbaStart,
            lbaCount,
            ...(options.allowIoErrors === undefined ? {} : { allowIoErrors: options.allowIoErrors }),
          }));

    // Buffers: one contiguous run per queue, one block-sized slice per context.
    for (let q = 0; q < options.queues; q++) {
      const qid = firstQid + q;
      const base = restored?.buffers[q] ?? this.mem.allocBytes(options.queueDepth * options.blockBytes);
      this.buffers.push(base);
      if (this.verifier === undefined && restored === undefined)
        this.mem.fill(base, options.queueDepth * options.blockBytes, 0xa5);
      const rng = new Xorshift32((options.seed ^ Math.imul(qid, 0x9e3779b1)) >>> 0);
      for (let d = 0; d < options.queueDepth; d++) {
        const ctx: IoContext = {
          index: this.contexts.length,
          qid,
          rng,
          bufferGpa: base + d * options.blockBytes,
          lowBounds: new Uint32Array(this.nlb),
          lba: 0,
          nlb: this.nlb,
          write: false,
          final: false,
          outstanding: false,
          abandoned: false,
          startMs: 0,
          onComplete: () => {},
        };
        ctx.onComplete = (status) => this.completed(ctx, status);
        this.tokenByCallback.set(ctx.onComplete, `ctx:${ctx.index}`);
        this.contexts.push(ctx);
      }
    }
  }

  // ------------------------------------------------------------------ migration (vCPU state)

  /**
   * The workload's state for the destination VMM (`guest-state.ts`), taken while the driver is frozen
   * (nothing completes or issues meanwhile). Outstanding commands are named "ctx:<index>" in the
   * driver's saved queues (`ioTokenOf`).
   * @throws WorkloadError `state` outside a run (before start, while verifying, after).
   */
  saveState(): WorkloadState {
    if (this.phase !== "running" && this.phase !== "draining")
      throw new WorkloadError("state", `saveState() in phase ${this.phase}`);
    const now = performance.now();
    const { verifier: _v, ...plain } = this.options;
    const rngs: number[] = [];
    for (const ctx of this.contexts)
      if (rngs.length <= ctx.qid - this.firstQid) rngs.push(ctx.rng.saveState());
    return {
      options: plain,
      buffers: this.buffers.slice(),
      rngStates: rngs,
      contexts: this.contexts.map((c) => ({
        lba: c.lba,
        nlb: c.nlb,
        write: c.write,
        final: c.final,
        outstanding: c.outstanding,
        abandoned: c.abandoned,
        ageMs: c.outstanding ? now - c.startMs : 0,
        lowBounds: Array.from(c.lowBounds),
      })),
      phase: this.phase,
      issuing: this.issuing,
      issued: this.issued,
      outstanding: this.outstanding,
      seqCursor: this.seqCursor,
      finalCursor: this.finalCursor,
      parked: this.parked.map((c) => c.index),
      histogram: this.histogram.saveState(),
      counters: {
        ops: this.ops,
        bytesRead: this.bytesRead,
        bytesWritten: this.bytesWritten,
        lateCompletions: this.lateCompletions,
        reads: this.reads,
        writes: this.writes,
        errors: this.errors,
        missing: this.missing,
        duplicates: this.duplicates,
      },
      elapsedMs: now - this.startMs,
      sinceLastCompletionMs: now - this.lastCompletionMs,
      duplicatesAtStart: this.duplicatesAtStart,
      durationLeftMs:
        this.options.durationMs === undefined || this.phase !== "running"
          ? null
          : Math.max(0, this.options.durationMs - (now - this.startMs)),
      verifier: this.verifier?.saveState() ?? null,
    };
  }

  /**
   * The guest continues in another VMM (its state was saved there): this copy stops for good — timers
   * cleared, nothing issued or counted any more — and `finished` resolves with the stats so far.
   */
  endMigratedAway(): void {
    if (this.durationTimer !== undefined) clearTimeout(this.durationTimer);
    if (this.parkTimer !== undefined) clearTimeout(this.parkTimer);
    this.durationTimer = undefined;
    this.parkTimer = undefined;
    this.parked.length = 0;
    this.issuing = false;
    this.migratedAway = true;
    this.phase = "stopped";
    this.resolveFinished(this.stats());
  }

  /** True once `endMigratedAway()` ran. */
  get hasMigratedAway(): boolean {
    return this.migratedAway;
  }

  /** Token of an outstanding command's callback (for `GuestNvmeDriver.saveState`), or undefined. */
  readonly ioTokenOf = (cb: CompletionCallback): string | undefined => this.tokenByCallback.get(cb);

  /** The callback a "ctx:<index>" token stands for. @throws WorkloadError for an unknown token. */
  callbackFor(token: string): CompletionCallback {
    const m = /^ctx:(\d+)$/.exec(token);
    const ctx = m === null ? undefined : this.contexts[Number(m[1])];
    if (ctx === undefined) throw new WorkloadError("invalid-argument", `unknown command token ${token}`);
    return ctx.onComplete;
  }

  /**
   * A workload continuing a migrated run (`saveState()` output) over a restored driver and memory.
   * Call `resumeRestored()` once the driver runs.
   */
  static restore(driver: GuestNvmeDriver, mem: GuestMemory, s: WorkloadState): Workload {
    const verifier = s.verifier === null ? undefined : Verifier.fromState(s.verifier);
    const w = new Workload(
      driver,
      mem,
      { ...s.options, ...(verifier === undefined ? { verify: false } : { verifier }) },
      s,
    );
    if (s.contexts.length !== w.contexts.length || s.rngStates.length !== w.options.queues)
      throw new WorkloadError("invalid-argument", "saved workload does not match its options");
    const now = performance.now();
    s.contexts.forEach((c, i) => {
      const ctx = w.contexts[i]!;
      ctx.lba = c.lba;
      ctx.nlb = c.nlb;
      ctx.write = c.write;
      ctx.final = c.final;
      ctx.outstanding = c.outstanding;
      ctx.abandoned = c.abandoned;
      ctx.startMs = now - c.ageMs;
      ctx.lowBounds.set(c.lowBounds.slice(0, ctx.lowBounds.length));
    });
    for (const ctx of w.contexts) ctx.rng.loadState(s.rngStates[ctx.qid - w.firstQid]!);
    w.phase = s.phase;
    w.issuing = s.issuing;
    w.issued = s.issued;
    w.outstanding = s.outstanding;
    w.seqCursor = s.seqCursor;
    w.finalCursor = s.finalCursor;
    for (const i of s.parked) {
      const ctx = w.contexts[i];
      if (ctx !== undefined) w.parked.push(ctx);
    }
    w.histogram.loadState(s.histogram);
    const c = s.counters;
    w.ops = c.ops;
    w.bytesRead = c.bytesRead;
    w.bytesWritten = c.bytesWritten;
    w.lateCompletions = c.lateCompletions;
    w.reads = c.reads;
    w.writes = c.writes;
    w.errors = c.errors;
    w.missing = c.missing;
    w.duplicates = c.duplicates;
    w.startMs = now - s.elapsedMs;
    w.lastCompletionMs = now - s.sinceLastCompletionMs;
    w.duplicatesAtStart = s.duplicatesAtStart;
    w.restoredDurationLeftMs = s.durationLeftMs;
    return w;
  }

  /** Lets a restored run go on (retries parked commands, re-arms the duration); returns `finished`. */
  resumeRestored(): Promise<WorkloadStats> {
    if (this.phase === "running") {
      const left = this.restoredDurationLeftMs;
      if (left !== null) this.durationTimer = setTimeout(() => this.endRun(), left);
      if (this.parked.length > 0 && this.parkTimer === undefined) this.parkTimer = setTimeout(this.unpark, 0);
      this.checkEnd();
    } else if (this.phase === "draining") {
      void this.drain().then((left) => this.finish(left));
    }
    return this.finished;
  }

  /** Commands outstanding now. */
  get outstandingCount(): number {
    return this.outstanding;
  }

  /** Commands completed so far. */
  get completedOps(): number {
    return this.ops;
  }

  /** True between `start()` and the end of the run (before draining). */
  get running(): boolean {
    return this.phase === "running";
  }

  /** Starts issuing. Returns `finished`. */
  start(): Promise<WorkloadStats> {
    if (this.phase !== "new") throw new WorkloadError("state", `start() in phase ${this.phase}`);
    this.phase = "running";
    this.issuing = true;
    this.startMs = performance.now();
    this.lastCompletionMs = this.startMs;
    this.duplicatesAtStart = this.driver.stats().duplicateCompletions;
    if (this.options.durationMs !== undefined) {
      this.durationTimer = setTimeout(() => this.endRun(), this.options.durationMs);
    }
    this.driver.batch(() => {
      for (const ctx of this.contexts) this.issue(ctx);
    });
    this.checkEnd();
    return this.finished;
  }

  /** Stops issuing, waits (≤ drainTimeoutMs) for outstanding commands, returns the stats. */
  async stop(): Promise<WorkloadStats> {
    if (this.phase === "new") throw new WorkloadError("state", "stop() before start()");
    this.endRun();
    return this.finished;
  }

  /**
   * Reads back every LBA the run wrote and checks it (after stopping the run if needed); returns
   * the verifier's report, including completion accounting.
   */
  async verify(): Promise<VerifyReport> {
    const v = this.verifier;
    if (v === undefined)
      throw new WorkloadError("state", "verify() on a workload created with verify: false");
    if (this.phase === "new") throw new WorkloadError("state", "verify() before start()");
    await this.stop();
    if (this.phase !== "stopped") throw new WorkloadError("state", `verify() in phase ${this.phase}`);
    this.phase = "verifying";
    this.finalCursor = this.lbaStart;
    this.driver.batch(() => {
      for (const ctx of this.contexts) if (!ctx.outstanding && !ctx.abandoned) this.issueFinal(ctx);
    });
    const left = await this.drain();
    if (left > 0) this.abandonOutstanding(left);
    this.phase = "verified";
    return v.report();
  }

  /** Frees the data buffers (after the run; the workload cannot be used again). */
  release(): void {
    if (this.outstanding > 0) throw new WorkloadError("state", "release() with commands outstanding");
    for (const b of this.buffers.splice(0)) this.mem.free(b);
  }

  // ------------------------------------------------------------------ issuing

  private pickLba(rng: Xorshift32): number {
    let i: number;
    if (this.options.pattern === "random") i = rng.nextBelow(this.slotsInRange);
    else {
      i = this.seqCursor;
      this.seqCursor = i + 1 === this.slotsInRange ? 0 : i + 1;
    }
    return this.lbaStart + i * this.nlb;
  }

  /** Issues the next workload command from `ctx`; false when the run is over or nothing can go. */
  private issue(ctx: IoContext): boolean {
    if (!this.issuing) return false;
    const limit = this.options.ops;
    if (limit !== undefined && this.issued >= limit) {
      this.issuing = false;
      return false;
    }
    const rng = ctx.rng;
    const nlb = this.nlb;
    let write = rng.nextBelow(100) >= this.options.readPercent;
    let lba = this.pickLba(rng);
    const v = this.verifier;
    if (write && v !== undefined) {
      for (let tries = 0; tries < 4 && !v.canWrite(lba, nlb); tries++) lba = this.pickLba(rng);
      if (!v.canWrite(lba, nlb)) write = false;
    }
    ctx.lba = lba;
    ctx.write = write;
    ctx.final = false;
    if (v !== undefined) {
      if (write) {
        v.beginWrite(lba, nlb, this.mem.dataView, ctx.bufferGpa);
        this.mem.markDirty(ctx.bufferGpa, nlb * this.lbaBytes);
      } else v.beginRead(lba, nlb, ctx.lowBounds);
    }
    if (!this.submit(ctx)) {
      if (write) v?.cancelWrite(lba, nlb);
      return false;
    }
    this.issued++;
    return true;
  }

  /** Issues the next read-back chunk from `ctx`; false when the read-back is fully issued. */
  private issueFinal(ctx: IoContext): boolean {
    const v = this.verifier!;
    const end = this.lbaStart + this.lbaCount;
    while (this.finalCursor < end) {
      const lba = this.finalCursor;
      const nlb = Math.min(this.nlb, end - lba);
      this.finalCursor += nlb;
      if (!v.anyWritten(lba, nlb)) continue;
      ctx.lba = lba;
      ctx.nlb = nlb;
      ctx.write = false;
      ctx.final = true;
      if (this.submit(ctx)) return true;
      this.finalCursor = lba; // retry this chunk when the context is un-parked
      return false;
    }
    return false;
  }

  /** Submits ctx's command; parks the context (retried every ms) when the driver takes none. */
  private submit(ctx: IoContext): boolean {
    const v = this.verifier;
    ctx.outstanding = true;
    this.outstanding++;
    v?.commandIssued(ctx.index);
    ctx.startMs = this.driver.nowMs();
    const cid = ctx.write
      ? this.driver.submitWrite(ctx.qid, this.nsid, ctx.lba, ctx.nlb, ctx.bufferGpa, ctx.onComplete)
      : this.driver.submitRead(ctx.qid, this.nsid, ctx.lba, ctx.nlb, ctx.bufferGpa, ctx.onComplete);
    if (cid >= 0) return true;
    ctx.outstanding = false;
    this.outstanding--;
    v?.commandCancelled(ctx.index);
    this.park(ctx);
    return false;
  }

  private park(ctx: IoContext): void {
    this.parked.push(ctx);
    if (this.parkTimer === undefined) this.parkTimer = setTimeout(this.unpark, 1);
  }

  private readonly unpark = (): void => {
    this.parkTimer = undefined;
    const ctxs = this.parked.splice(0);
    this.driver.batch(() => {
      for (const ctx of ctxs) {
        if (this.phase === "verifying") this.issueFinal(ctx);
        else this.issue(ctx);
      }
    });
    this.checkEnd();
  };

  // ------------------------------------------------------------------ completions

  private completed(ctx: IoContext, status: number): void {
    if (this.migratedAway) return;
    const v = this.verifier;
    if (ctx.abandoned) {
      ctx.abandoned = false;
      this.lateCompletions++;
      return;
    }
    if (!ctx.outstanding) {
      // A completion the driver let through for a command we no longer wait for.
      this.duplicates++;
      v?.noteDuplicateCompletion(`completion for workload slot ${ctx.index}, not outstanding`);
      return;
    }
    v?.commandCompleted(ctx.index);
    ctx.outstanding = false;
    this.outstanding--;
    const now = this.driver.nowMs();
    const bytes = ctx.nlb * this.lbaBytes;
    if (ctx.final) {
      v!.checkFinal(ctx.lba, ctx.nlb, status, this.mem.dataView, ctx.bufferGpa);
      if (this.phase !== "verifying" || !this.issueFinal(ctx)) this.checkEnd();
      return;
    }
    this.histogram.record((now - ctx.startMs) * 1000);
    this.lastCompletionMs = now;
    this.ops++;
    if (status !== 0) this.errors++;
    if (ctx.write) {
      this.writes++;
      this.bytesWritten += bytes;
      v?.completeWrite(ctx.lba, ctx.nlb, status);
    } else {
      this.reads++;
      this.bytesRead += bytes;
      v?.completeRead(ctx.lba, ctx.nlb, ctx.lowBounds, status, this.mem.dataView, ctx.bufferGpa);
    }
    if (!this.issue(ctx)) this.checkEnd();
  }
  // ------------------------------------------------------------------ end of run

  private endRun(): void {
    if (this.phase !== "running") return;
    this.issuing = false;
    this.phase = "draining";
    if (this.durationTimer !== undefined) clearTimeout(this.durationTimer);
    this.durationTimer = undefined;
    void this.drain().then((left) => this.finish(left));
  }

  /** Ends the run when nothing more will be issued and nothing is outstanding. */
  private checkEnd(): void {
    if (this.phase === "running" && !this.issuing && this.parked.length === 0 && this.outstanding === 0) {
      this.endRun();
    }
    if (this.outstanding === 0 && (this.phase !== "verifying" || this.parked.length === 0)) {
      const ws = this.drainWaiters.splice(0);
      for (const w of ws) w();
    }
  }

  /** Resolves with the number of commands still outstanding after ≤ drainTimeoutMs. */
  private drain(): Promise<number> {
    if (this.phase !== "verifying") {
      // Parked contexts will not be retried any more.
      this.parked.length = 0;
    }
    if (this.outstanding === 0 && this.parked.length === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        resolve(this.outstanding);
      };
      this.drainWaiters.push(done);
      timer = setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((w) => w !== done);
        resolve(this.outstanding);
      }, this.drainTimeoutMs);
    });
  }

  /** Counts what is still outstanding after a drain timeout as missing. */
  private abandonOutstanding(left: number): void {
    this.missing += left;
    for (const ctx of this.contexts) {
      if (!ctx.outstanding) continue;
      ctx.outstanding = false;
      ctx.abandoned = true;
    }
    this.outstanding = 0;
    this.verifier?.finishCompletions();
  }

  private finish(left: number): void {
    if (this.parkTimer !== undefined) clearTimeout(this.parkTimer);
    this.parkTimer = undefined;
    this.parked.length = 0;
    const v = this.verifier;
    if (left > 0) this.abandonOutstanding(left);
    const driverDuplicates = this.driver.stats().duplicateCompletions - this.duplicatesAtStart;
    v?.noteDuplicateCompletion(
      `${driverDuplicates} completion(s) for CIDs not outstanding (driver)`,
      driverDuplicates,
    );
    this.duplicatesAtStart += driverDuplicates;
    this.phase = "stopped";
    this.resolveFinished(this.stats());
  }

  /** Stats so far (final once `finished` resolved). */
  stats(): WorkloadStats {
    const end =
      this.phase === "running" || this.phase === "draining" ? performance.now() : this.lastCompletionMs;
    const elapsedMs = Math.max(0, end - this.startMs);
    const seconds = elapsedMs / 1000;
    return {
      ops: this.ops,
      reads: this.reads,
      writes: this.writes,
      bytesRead: this.bytesRead,
      bytesWritten: this.bytesWritten,
      errors: this.errors,
      missingCompletions: this.missing,
      lateCompletions: this.lateCompletions,
      duplicateCompletions: this.duplicates,
      elapsedMs,
      iops: seconds > 0 ? this.ops / seconds : 0,
      mibPerSecond: seconds > 0 ? (this.bytesRead + this.bytesWritten) / 1048576 / seconds : 0,
      latency: this.histogram.summary(),
    };
  }
}
