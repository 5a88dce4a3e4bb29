/**
 * The data sessions of the NVMe variant driver: what its saving data_fd produces and its resuming
 * data_fd consumes, in the device migration stream format (`src/migration/stream/`).
 *
 * Saving stream (source):
 *   header · [PRE_COPY: NAMESPACE_DATA* (initial pass over each namespace, then changed ranges from the
 *   UDMQ)] · [STOP_COPY: NAMESPACE_DATA* (last changed ranges, after the suspend drained the UDMQ to
 *   ESA 3) · CONTROLLER_STATE] · END
 * Shared storage sends no namespace data at all.
 *
 * Resuming (destination): records are checked as they arrive (framing, CRCs). Namespace data is written
 * to the destination's namespace through the controlling function as it arrives — that namespace is not
 * visible to any running function until this one resumes, and a failed migration resets it — while the
 * controller state is applied only at commit, through Set Controller State, which validates it whole
 * before changing the controller.
 */
import type { StreamRecord } from "../../migration/stream/format.ts";
import { RecordTag } from "../../migration/stream/format.ts";
import { StreamParser } from "../../migration/stream/reader.ts";
import { StreamWriter } from "../../migration/stream/writer.ts";
import { LbaChangeLog } from "../../storage/lba-change-log.ts";
import type {
  CommitResult,
  PrecopyInfo,
  ResumingSession,
  SavingReadResult,
  SavingSession,
} from "../backend.ts";
import { Errno } from "../states.ts";
import type { BlockChannel } from "./admin-channel.ts";
import type { ChangeFeed, ControlledFunctionOps } from "./function-ops.ts";

/** nvmig NVMe device stream format UUID (matches the controller state vendor format). */
export const NVME_STREAM_FORMAT_UUID = "6e766d69-672d-7374-6174-652d76310000";

export interface NamespaceGeometry {
  nsid: number;
  lbaBytes: 512 | 4096;
  lbaCount: number;
}

/** Per-namespace progress of the initial pre-copy pass. */
interface InitialPass {
  ns: NamespaceGeometry;
  nextLba: number;
}

export class NvmeSavingSession implements SavingSession {
  readonly kind = "saving" as const;
  private readonly writer: StreamWriter;
  private phase: "precopy" | "final" = "precopy";
  private finalState: Uint8Array | undefined;
  private ended = false;
  private closed = false;
  private readonly initial: InitialPass[];
  readonly logs = new Map<number, LbaChangeLog>();
  /** Namespace bytes put in the stream (initial pass + changed ranges). */
  namespaceBytesSent = 0;

  constructor(
    private readonly blocks: BlockChannel | undefined,
    namespaces: NamespaceGeometry[],
    private readonly chunkBytes: number,
    identity: string,
    /** Reads the UDMQ into `logs`; undefined for shared storage. */
    private udmq: ChangeFeed | undefined,
  ) {
    this.writer = new StreamWriter({
      formatUuid: NVME_STREAM_FORMAT_UUID,
      identity,
      userData: blocks !== undefined,
    });
    this.initial = blocks === undefined ? [] : namespaces.map((ns) => ({ ns, nextLba: 0 }));
    for (const ns of namespaces) this.logs.set(ns.nsid, new LbaChangeLog({ lbaCount: ns.lbaCount }));
  }

  attachUdmq(r: ChangeFeed): void {
    this.udmq = r;
  }

  /** The device is suspended: everything left, then the controller state, then END. */
  finalize(state: Uint8Array): void {
    this.phase = "final";
    this.finalState = state;
  }

  get isFinal(): boolean {
    return this.phase === "final";
  }

  private initialRemainingBytes(): number {
    let n = 0;
    for (const p of this.initial) n += (p.ns.lbaCount - p.nextLba) * p.ns.lbaBytes;
    return n;
  }

  private dirtyBytes(): number {
    let n = 0;
    for (const p of this.initial) n += (this.logs.get(p.ns.nsid)?.pendingLbas() ?? 0) * p.ns.lbaBytes;
    return n;
  }

  /** Bytes the stop-copy phase would still have to send besides the controller state. */
  pendingDataBytes(): number {
    return this.initialRemainingBytes() + this.dirtyBytes() + this.writer.pendingBytes;
  }

  private async copy(ns: NamespaceGeometry, slba: number, nlb: number): Promise<number | undefined> {
    const r = await this.blocks!.read(ns.nsid, slba, nlb);
    if (r.status !== 0 || r.data === undefined) return Errno.EIO;
    this.writer.writeNamespaceData({ nsid: ns.nsid, slba, nlb, lbaBytes: ns.lbaBytes }, r.data);
    this.namespaceBytesSent += r.data.byteLength;
    return undefined;
  }

  /** Puts the next piece of namespace data in the writer; false when there is none now. */
  private async produceData(): Promise<boolean | number> {
    // Drain the UDMQ on every call, also during the initial pass: a queue left to fill up ends in
    // "queue full" (ESA 7), which marks whole namespaces changed and sends them all again.
    if (this.udmq !== undefined) await this.udmq.drain();
    for (const p of this.initial) {
      if (p.nextLba >= p.ns.lbaCount) continue;
      const nlb = Math.min(Math.floor(this.chunkBytes / p.ns.lbaBytes), p.ns.lbaCount - p.nextLba);
      const slba = p.nextLba;
      p.nextLba += nlb;
      const err = await this.copy(p.ns, slba, nlb);
      return err ?? true;
    }
    for (const p of this.initial) {
      const log = this.logs.get(p.ns.nsid)!;
      if (log.isEmpty()) continue;
      const maxNlb = Math.floor(this.chunkBytes / p.ns.lbaBytes);
      for (const r of log.drain(16)) {
        for (let at = r.slba; at < r.slba + r.nlb; at += maxNlb) {
          const err = await this.copy(p.ns, at, Math.min(maxNlb, r.slba + r.nlb - at));
          if (err !== undefined) return err;
        }
      }
      return true;
    }
    return false;
  }

  async read(maxBytes: number): Promise<SavingReadResult> {
    if (this.closed) return { errno: Errno.ENODEV };
    for (;;) {
      if (this.writer.pendingBytes > 0) return this.writer.read(maxBytes);
      if (this.ended) return { eos: this.phase === "final" ? "permanent" : "temporary" };
      const produced = await this.produceData();
      if (typeof produced === "number") return { errno: produced };
      if (produced) continue;
      if (this.phase === "precopy") return { eos: "temporary" };
      // Final phase and no data left: the controller state, then END.
      this.writer.writeControllerState(this.finalState!);
      this.writer.end();
      this.ended = true;
    }
  }

  async precopyInfo(): Promise<PrecopyInfo> {
    if (this.udmq !== undefined) await this.udmq.drain();
    const initialBytes = BigInt(
      this.initialRemainingBytes() + (this.phase === "precopy" ? this.writer.pendingBytes : 0),
    );
    return { initialBytes, dirtyBytes: BigInt(this.dirtyBytes()) };
  }

  close(): void {
    this.closed = true;
  }
}

export class NvmeResumingSession implements ResumingSession {
  readonly kind = "resuming" as const;
  private readonly parser: StreamParser;
  private state: Uint8Array | undefined;
  private writes: Promise<number>[] = [];
  private failure: number | undefined;
  /** Namespace bytes written to the destination namespace. */
  namespaceBytesWritten = 0;

  constructor(
    private readonly ops: ControlledFunctionOps,
    private readonly blocks: BlockChannel | undefined,
    /** Largest controller state accepted, bytes (ENOMEM beyond). */
    private readonly maxStateBytes: number,
  ) {
    this.parser = new StreamParser({ onRecord: (r) => this.onRecord(r) });
  }

  private onRecord(r: StreamRecord): void {
    switch (r.tag) {
      case RecordTag.CONTROLLER_STATE:
        if (r.state.byteLength > this.maxStateBytes) this.failure = Errno.ENOMEM;
        else this.state = r.state.slice();
        return;
      case RecordTag.NAMESPACE_DATA: {
        if (this.blocks === undefined) {
          this.failure = Errno.EINVAL; // shared storage: namespace data has no business here
          return;
        }
        const data = r.data.slice();
        this.writes.push(
          this.blocks.write(r.nsid, r.slba, data).then(
            (w) => {
              if (w.status === 0) this.namespaceBytesWritten += data.byteLength;
              return w.status === 0 ? 0 : Errno.EIO;
            },
            () => Errno.EIO,
          ),
        );
        return;
      }
      default:
        return;
    }
  }

  async write(bytes: Uint8Array): Promise<number> {
    if (this.failure !== undefined) return this.failure;
    const err = this.parser.push(bytes);
    if (err !== undefined) return err.code === "record-too-large" ? Errno.ENOMEM : Errno.EINVAL;
    // Bound the namespace writes in flight (backpressure for the sender).
    if (this.writes.length > 64) await this.settleWrites();
    return this.failure ?? 0;
  }

  private async settleWrites(): Promise<void> {
    const ws = this.writes;
    this.writes = [];
    for (const e of await Promise.all(ws)) if (e !== 0) this.failure ??= e;
  }

  async commit(): Promise<CommitResult> {
    const fail = (errno: number): CommitResult => ({ ok: false, errno, deviceError: false });
    const parsed = this.parser.finish();
    if (!parsed.ok) return fail(Errno.EINVAL);
    await this.settleWrites();
    if (this.failure !== undefined) return fail(this.failure);
    if (this.state === undefined) return fail(Errno.EINVAL);
    try {
      await this.ops.setState(this.state);
    } catch {
      return fail(Errno.EINVAL);
    }
    return { ok: true };
  }

  close(): void {
    this.writes = [];
  }
}

export function lbaBytesOf(n: number | undefined): 512 | 4096 | undefined {
  return n === 512 || n === 4096 ? n : undefined;
}
