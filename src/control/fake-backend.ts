/**
 * An in-memory ControlBackend for TRANSPORT tests (this folder's and the orchestrator's): it records
 * every call, keeps controller states and namespace bytes in maps, and has no device logic at all
 * (Suspend just flips a state string). Not a device model — the real backend issues TP4159 admin
 * commands on the PF.
 */
import type {
  AcquireLeaseParams,
  CallContext,
  ChangedLbaRange,
  ControlBackend,
  ControlEvent,
  ControllerStateSelector,
  FunctionDetails,
  FunctionInfo,
  FunctionState,
  LeaseInfo,
  NamespaceDataChunk,
  NamespaceDataReader,
  ReadNamespaceDataParams,
  ReleaseLeaseParams,
  RenewLeaseParams,
  ReportDirtyPagesParams,
  ResumeParams,
  SetControllerStateParams,
  StartDirtyTrackingParams,
  SuspendParams,
  WriteNamespaceDataParams,
} from "./backend.ts";
import { ControlError } from "./errors.ts";
import { type Clock, LeaseTable } from "./lease-table.ts";

export interface RecordedCall {
  method: keyof ControlBackend;
  identity: string;
  params: unknown;
}

export const FAKE_LBA_BYTES = 512;

export class FakeControlBackend implements ControlBackend {
  /** Every backend call, in order. */
  readonly calls: RecordedCall[] = [];
  readonly functions = new Map<number, FunctionInfo>();
  /** Controller state per CNTLID (what getControllerState returns, what setControllerState stored). */
  readonly states = new Map<number, Uint8Array>();
  /** Namespace bytes per `${cntlid}/${nsid}`, LBA size FAKE_LBA_BYTES. */
  readonly namespaces = new Map<string, Uint8Array>();
  /** Batches streamChangedLbaRanges yields, per CNTLID. */
  readonly changedRanges = new Map<number, ChangedLbaRange[][]>();
  /** If set, the next backend call throws it (once). */
  failNext: ControlError | Error | undefined;
  readonly leases: LeaseTable;
  readonly #watchers = new Set<(e: ControlEvent) => void>();
  #dirtyCounter = 0;

  constructor(options: { functionCount?: number; clock?: Clock } = {}) {
    const count = options.functionCount ?? 3;
    for (let vf = 0; vf < count; vf++) {
      const cntlid = vf + 1;
      this.functions.set(cntlid, {
        cntlid,
        vfNumber: vf,
        pciName: `0000:01:00.${vf}`,
        state: "running",
        ioQueuePairs: 4,
        namespaces: [{ nsid: 1, sizeBlocks: 1n << 20n, lbaBytes: FAKE_LBA_BYTES }],
      });
    }
    this.leases = new LeaseTable(options.clock === undefined ? {} : { clock: options.clock });
  }

  /** Number of watchEvents streams currently open. */
  get watcherCount(): number {
    return this.#watchers.size;
  }

  /** Delivers an event to every open watchEvents stream. */
  emit(event: ControlEvent): void {
    for (const w of this.#watchers) w(event);
  }

  #record(method: keyof ControlBackend, ctx: CallContext, params: unknown): void {
    this.calls.push({ method, identity: ctx.identity, params });
    const failure = this.failNext;
    if (failure !== undefined) {
      this.failNext = undefined;
      throw failure;
    }
  }

  #fn(cntlid: number): FunctionInfo {
    const f = this.functions.get(cntlid);
    if (f === undefined) throw new ControlError("not-found", `no function with cntlid ${cntlid}`);
    return f;
  }

  #setState(f: FunctionInfo, to: FunctionState): void {
    const from = f.state;
    f.state = to;
    this.emit({
      kind: "state-changed",
      cntlid: f.cntlid,
      timeUnixMs: Date.now(),
      fromState: from,
      toState: to,
    });
  }

  async listFunctions(ctx: CallContext): Promise<FunctionInfo[]> {
    this.#record("listFunctions", ctx, {});
    return [...this.functions.values()].map((f) => structuredClone(f));
  }

  async describeFunction(cntlid: number, ctx: CallContext): Promise<FunctionDetails> {
    this.#record("describeFunction", ctx, { cntlid });
    const f = this.#fn(cntlid);
    const lease = this.leases.get(cntlid);
    const details: FunctionDetails = {
      function: structuredClone(f),
      controllerStateBytes: BigInt(this.states.get(cntlid)?.length ?? 0),
      userDataLogging: false,
      dirtyTracking: false,
    };
    if (lease !== undefined) details.lease = lease;
    return details;
  }

  async suspend(params: SuspendParams, ctx: CallContext): Promise<{ state: FunctionState }> {
    this.#record("suspend", ctx, params);
    const f = this.#fn(params.cntlid);
    if (params.suspendType === "suspend") this.#setState(f, "suspended");
    return { state: f.state };
  }

  async resume(params: ResumeParams, ctx: CallContext): Promise<{ state: FunctionState }> {
    this.#record("resume", ctx, params);
    const f = this.#fn(params.cntlid);
    if (f.state !== "suspended")
      throw new ControlError("failed-precondition", `function ${f.cntlid} is not suspended`);
    this.#setState(f, "running");
    return { state: f.state };
  }

  async getControllerState(params: ControllerStateSelector, ctx: CallContext): Promise<Uint8Array> {
    this.#record("getControllerState", ctx, params);
    this.#fn(params.cntlid);
    return this.states.get(params.cntlid) ?? new Uint8Array(0);
  }

  async setControllerState(
    params: SetControllerStateParams,
    ctx: CallContext,
  ): Promise<{ state: FunctionState }> {
    this.#record("setControllerState", ctx, { ...params, state: params.state.length });
    const f = this.#fn(params.cntlid);
    this.states.set(params.cntlid, params.state.slice());
    return { state: f.state };
  }

  async startUserDataLogging(cntlid: number, ctx: CallContext): Promise<void> {
    this.#record("startUserDataLogging", ctx, { cntlid });
    this.#fn(cntlid);
  }

  async stopUserDataLogging(cntlid: number, ctx: CallContext): Promise<void> {
    this.#record("stopUserDataLogging", ctx, { cntlid });
    this.#fn(cntlid);
  }

  async *streamChangedLbaRanges(cntlid: number, ctx: CallContext): AsyncGenerator<ChangedLbaRange[]> {
    this.#record("streamChangedLbaRanges", ctx, { cntlid });
    this.#fn(cntlid);
    for (const batch of this.changedRanges.get(cntlid) ?? []) yield batch;
  }

  async startDirtyTracking(
    params: StartDirtyTrackingParams,
    ctx: CallContext,
  ): Promise<{ pageSizeBytes: bigint }> {
    this.#record("startDirtyTracking", ctx, params);
    this.#fn(params.cntlid);
    return { pageSizeBytes: params.pageSizeBytes };
  }

  /** Bitmap pattern: byte i = (i + n) & 0xff, n counting reports, so tests see read-and-clear calls differ. */
  async reportDirtyPages(params: ReportDirtyPagesParams, ctx: CallContext): Promise<Uint8Array> {
    this.#record("reportDirtyPages", ctx, params);
    this.#fn(params.cntlid);
    const pages = Number(params.lengthBytes / params.pageSizeBytes);
    const n = this.#dirtyCounter++;
    return Uint8Array.from({ length: Math.ceil(pages / 8) }, (_, i) => (i + n) & 0xff);
  }

  async stopDirtyTracking(cntlid: number, ctx: CallContext): Promise<void> {
    this.#record("stopDirtyTracking", ctx, { cntlid });
    this.#fn(cntlid);
  }

  async resetFunction(params: ResumeParams, ctx: CallContext): Promise<{ state: FunctionState }> {
    this.#record("resetFunction", ctx, params);
    const f = this.#fn(params.cntlid);
    this.#setState(f, "running");
    return { state: f.state };
  }

  watchEvents(cntlids: readonly number[] | "all", ctx: CallContext): AsyncIterable<ControlEvent> {
    this.#record("watchEvents", ctx, { cntlids });
    const watchers = this.#watchers;
    return {
      [Symbol.asyncIterator]: async function* (): AsyncGenerator<ControlEvent> {
        const queue: ControlEvent[] = [];
        let wake: (() => void) | undefined;
        const watcher = (e: ControlEvent): void => {
          if (cntlids === "all" || cntlids.includes(e.cntlid)) {
            queue.push(e);
            wake?.();
          }
        };
        const onAbort = (): void => wake?.();
        watchers.add(watcher);
        ctx.signal.addEventListener("abort", onAbort);
        try {
          while (!ctx.signal.aborted) {
            const next = queue.shift();
            if (next !== undefined) {
              yield next;
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
          }
        } finally {
          watchers.delete(watcher);
          ctx.signal.removeEventListener("abort", onAbort);
        }
      },
    };
  }

  async acquireLease(params: AcquireLeaseParams, ctx: CallContext): Promise<LeaseInfo> {
    this.#record("acquireLease", ctx, params);
    this.#fn(params.cntlid);
    return this.leases.acquire(params);
  }

  async renewLease(params: RenewLeaseParams, ctx: CallContext): Promise<LeaseInfo> {
    this.#record("renewLease", ctx, params);
    return this.leases.renew(params);
  }

  async releaseLease(params: ReleaseLeaseParams, ctx: CallContext): Promise<void> {
    this.#record("releaseLease", ctx, params);
    this.leases.release(params);
  }

  #namespace(cntlid: number, nsid: number): Uint8Array {
    const f = this.#fn(cntlid);
    const ns = f.namespaces.find((n) => n.nsid === nsid);
    if (ns === undefined) throw new ControlError("not-found", `function ${cntlid} has no namespace ${nsid}`);
    const key = `${cntlid}/${nsid}`;
    let bytes = this.namespaces.get(key);
    if (bytes === undefined) {
      bytes = new Uint8Array(16 << 20);
      this.namespaces.set(key, bytes);
    }
    return bytes;
  }

  async readNamespaceData(params: ReadNamespaceDataParams, ctx: CallContext): Promise<NamespaceDataReader> {
    this.#record("readNamespaceData", ctx, params);
    const bytes = this.#namespace(params.cntlid, params.nsid);
    const chunks = async function* (): AsyncGenerator<NamespaceDataChunk> {
      for (const r of params.ranges) {
        const start = Number(r.slba) * FAKE_LBA_BYTES;
        const end = start + (r.nlb + 1) * FAKE_LBA_BYTES;
        if (end > bytes.length)
          throw new ControlError("invalid-argument", `range at slba ${r.slba} beyond the namespace`);
        yield { slba: r.slba, data: bytes.subarray(start, end) };
      }
    };
    return { lbaBytes: FAKE_LBA_BYTES, chunks: chunks() };
  }

  async writeNamespaceData(
    params: WriteNamespaceDataParams,
    chunks: AsyncIterable<NamespaceDataChunk>,
    ctx: CallContext,
  ): Promise<{ blocksWritten: bigint }> {
    this.#record("writeNamespaceData", ctx, params);
    const bytes = this.#namespace(params.cntlid, params.nsid);
    let blocks = 0n;
    for await (const c of chunks) {
      if (c.data.length % FAKE_LBA_BYTES !== 0) throw new ControlError("invalid-argument", "partial block");
      const start = Number(c.slba) * FAKE_LBA_BYTES;
      if (start + c.data.length > bytes.length)
        throw new ControlError("invalid-argument", "write beyond namespace");
      bytes.set(c.data, start);
      blocks += BigInt(c.data.length / FAKE_LBA_BYTES);
    }
    return { blocksWritten: blocks };
  }
}
