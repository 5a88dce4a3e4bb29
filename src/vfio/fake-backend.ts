/**
 * Test double of a variant driver: a recording `MigrationBackend` with scripted streams and injectable
 * failures. Pure logic, for unit tests of the portal (the NVMe variant driver is tested against a real
 * controller elsewhere).
 *
 * Streams: a saving session opened by RUNNING→PRE_COPY / RUNNING_P2P→PRE_COPY_P2P serves `precopyBytes`
 * as initial data, then 0xdd bytes whenever `addDirty(n)` was called, else a temporary EOS; after
 * → STOP_COPY (or when opened by STOP→STOP_COPY) it serves what is left of the initial data, then
 * answers `stopCopyNotReady` temporary EOS, then `stopCopyBytes`, then a permanent EOS. `hold()` makes
 * the next arc, commit or read wait until `release()`. A resuming session collects writes (ENOMEM beyond
 * `resumeLimitBytes`); `commit()` fails with EINVAL unless the bytes equal `expectResume` (when set).
 */
import type {
  ArcResult,
  CommitResult,
  DataSizeResult,
  MigrationBackend,
  PrecopyInfo,
  ResumingSession,
  SavingReadResult,
  SavingSession,
} from "./backend.ts";
import { findArc } from "./next-hop.ts";
import { Errno, MigState, migStateName } from "./states.ts";

export interface FakeFailure {
  readonly errno: number;
  readonly deviceError: boolean;
}

export interface FakeBackendOptions {
  readonly flags: number;
  readonly precopyBytes?: Uint8Array;
  readonly stopCopyBytes?: Uint8Array;
  readonly stopCopyNotReady?: number;
  readonly resumeLimitBytes?: number;
  readonly expectResume?: Uint8Array;
}

const { STOP_COPY, PRE_COPY, PRE_COPY_P2P } = MigState;

export class FakeSavingSession implements SavingSession {
  readonly kind = "saving";
  phase: "precopy" | "stopcopy";
  closed = false;
  reads = 0;
  private initial: Uint8Array;
  private dirty = 0;
  private final: Uint8Array;
  private notReady: number;

  constructor(
    private readonly owner: FakeMigrationBackend,
    phase: "precopy" | "stopcopy",
    initial: Uint8Array,
    final: Uint8Array,
    notReady: number,
  ) {
    this.phase = phase;
    this.initial = initial;
    this.final = final;
    this.notReady = notReady;
  }

  addDirty(n: number): void {
    this.dirty += n;
  }

  async read(maxBytes: number): Promise<SavingReadResult> {
    this.owner.touch(`read ${maxBytes}`, this.closed);
    this.reads++;
    await this.owner.pause();
    // Initial data not read during pre-copy is still owed after → STOP_COPY.
    if (this.initial.length > 0) {
      const out = this.initial.subarray(0, maxBytes);
      this.initial = this.initial.subarray(out.length);
      return out.slice();
    }
    if (this.phase === "precopy") {
      if (this.dirty > 0) {
        const n = Math.min(this.dirty, maxBytes);
        this.dirty -= n;
        return new Uint8Array(n).fill(0xdd);
      }
      return { eos: "temporary" };
    }
    if (this.notReady > 0) {
      this.notReady--;
      return { eos: "temporary" };
    }
    if (this.final.length > 0) {
      const out = this.final.subarray(0, maxBytes);
      this.final = this.final.subarray(out.length);
      return out.slice();
    }
    return { eos: "permanent" };
  }

  precopyInfo(): PrecopyInfo {
    this.owner.touch("precopyInfo", this.closed);
    return { initialBytes: BigInt(this.initial.length), dirtyBytes: BigInt(this.dirty) };
  }

  close(): void {
    if (this.closed) throw new Error("saving session closed twice");
    this.closed = true;
    this.owner.calls.push("close saving");
  }
}

export class FakeResumingSession implements ResumingSession {
  readonly kind = "resuming";
  closed = false;
  private chunks: Uint8Array[] = [];
  private total = 0;

  constructor(private readonly owner: FakeMigrationBackend) {}

  get received(): Uint8Array {
    const out = new Uint8Array(this.total);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  write(bytes: Uint8Array): number {
    this.owner.touch(`write ${bytes.length}`, this.closed);
    const limit = this.owner.options.resumeLimitBytes ?? Number.POSITIVE_INFINITY;
    if (this.total + bytes.length > limit) return Errno.ENOMEM;
    this.chunks.push(bytes.slice());
    this.total += bytes.length;
    return 0;
  }

  async commit(): Promise<CommitResult> {
    this.owner.touch("commit", this.closed);
    this.owner.calls.push("commit");
    await this.owner.pause();
    const injected = this.owner.commitFailure;
    if (injected !== undefined) return { ok: false, ...injected };
    const want = this.owner.options.expectResume;
    if (want !== undefined) {
      const got = this.received;
      if (got.length !== want.length || got.some((b, i) => b !== want[i])) {
        return { ok: false, errno: Errno.EINVAL, deviceError: false };
      }
    }
    return { ok: true };
  }

  close(): void {
    if (this.closed) throw new Error("resuming session closed twice");
    this.closed = true;
    this.owner.calls.push("close resuming");
  }
}

export class FakeMigrationBackend implements MigrationBackend {
  readonly migrationFlags: number;
  /** Every call, in order: "arc STOP>STOP_COPY", "commit", "close saving", "reset", … */
  readonly calls: string[] = [];
  /** Arcs performed successfully, in order. */
  readonly arcs: Array<readonly [MigState, MigState]> = [];
  /** Arcs attempted (including failed ones). */
  readonly attempted: Array<readonly [MigState, MigState]> = [];
  /** The next arcs fail with these, in order (one entry per arc call). */
  readonly failNext: FakeFailure[] = [];
  /** Fails every attempt of the arc "FROM>TO" (state names). */
  readonly failArc = new Map<string, FakeFailure>();
  /** Failures actually returned by `arc`, with the arc they hit. */
  readonly applied: Array<{ readonly from: MigState; readonly to: MigState; readonly failure: FakeFailure }> =
    [];
  commitFailure: FakeFailure | undefined;
  stopCopyLength = 4096n;
  resets = 0;
  saving: FakeSavingSession[] = [];
  resuming: FakeResumingSession[] = [];
  private inFlight = 0;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  /** Resolves when an arc/commit reaches the gate. */
  private arrived: (() => void) | undefined;

  constructor(readonly options: FakeBackendOptions) {
    this.migrationFlags = options.flags;
  }

  /** Checks the contract: no call overlaps another, none on a closed session. */
  touch(what: string, closed = false): void {
    if (closed) throw new Error(`${what} on a closed session`);
    if (this.inFlight > 0) throw new Error(`${what} while another backend call is in flight`);
  }

  /** Makes the next arc/commit wait until `release()`; resolves when it is waiting. */
  hold(): Promise<void> {
    this.gate = new Promise<void>((r) => {
      this.openGate = r;
    });
    return new Promise<void>((r) => {
      this.arrived = r;
    });
  }

  release(): void {
    const open = this.openGate;
    this.gate = undefined;
    this.openGate = undefined;
    open?.();
  }

  async pause(): Promise<void> {
    const g = this.gate;
    if (g === undefined) return;
    this.inFlight++;
    this.arrived?.();
    this.arrived = undefined;
    try {
      await g;
    } finally {
      this.inFlight--;
    }
  }

  get currentSaving(): FakeSavingSession | undefined {
    const s = this.saving.at(-1);
    return s !== undefined && !s.closed ? s : undefined;
  }

  async arc(from: MigState, to: MigState): Promise<ArcResult> {
    const label = `${migStateName(from)}>${migStateName(to)}`;
    this.touch(`arc ${label}`);
    if (findArc(from, to) === undefined) throw new Error(`asked for a non-arc ${label}`);
    this.calls.push(`arc ${label}`);
    this.attempted.push([from, to]);
    await this.pause();
    const f = this.failNext.shift() ?? this.failArc.get(label);
    if (f !== undefined) {
      this.applied.push({ from, to, failure: f });
      return { ok: false, ...f };
    }
    this.arcs.push([from, to]);
    if (to === PRE_COPY && from !== PRE_COPY_P2P) return { ok: true, session: this.newSaving("precopy") };
    if (to === PRE_COPY_P2P && from !== PRE_COPY) return { ok: true, session: this.newSaving("precopy") };
    if (to === STOP_COPY && from === MigState.STOP) return { ok: true, session: this.newSaving("stopcopy") };
    if (to === STOP_COPY) {
      const s = this.currentSaving;
      if (s === undefined) throw new Error("→STOP_COPY continue without a saving session");
      s.phase = "stopcopy";
      return { ok: true };
    }
    if (to === MigState.RESUMING) {
      const r = new FakeResumingSession(this);
      this.resuming.push(r);
      return { ok: true, session: r };
    }
    return { ok: true };
  }

  private newSaving(phase: "precopy" | "stopcopy"): FakeSavingSession {
    const o = this.options;
    const s = new FakeSavingSession(
      this,
      phase,
      (o.precopyBytes ?? new Uint8Array(0)).slice(),
      (o.stopCopyBytes ?? new Uint8Array(0)).slice(),
      o.stopCopyNotReady ?? 0,
    );
    this.saving.push(s);
    return s;
  }

  dataSize(): DataSizeResult {
    this.touch("dataSize");
    this.calls.push("dataSize");
    return { ok: true, stopCopyLength: this.stopCopyLength };
  }

  reset(): void {
    this.touch("reset");
    this.calls.push("reset");
    this.resets++;
  }
}
