/**
 * vfio-user server for one PCI function: owns the protocol, delegates device behaviour to a
 * `VfioUserDeviceBackend`.
 *
 *   client (VMM)                          server                          backend
 *     | VERSION 0.m {caps} ─────────────────► | negotiate
 *     | ◄──────────────────── VERSION 0.min(m,2) {max_msg_fds 8, max_data_xfer_size 1 MiB, migration}
 *     | DMA_MAP (fd?) ───────────────────────► | table check (EEXIST) ──────► dmaMap
 *     | DEVICE_GET_INFO / REGION_INFO / IRQ_INFO / SET_IRQS (eventfds) ──► …
 *     | REGION_WRITE (doorbell) ─────────────► | ─────────────────────────► regionWrite → afterReply
 *     | ◄───────────────────── REGION_WRITE reply
 *     | ◄───────────────────── DMA_READ (id from the server's own id space)   (afterReply runs now)
 *     | DMA_READ reply ──────────────────────► | matched by id + command → dmaRead() resolves
 *     | (disconnect)                           | ─────────────────────────► clientDetached
 *
 * Receiver states per connection: AWAIT_VERSION → NEGOTIATED → CLOSED. Before VERSION every other
 * command is answered EINVAL; a VERSION with another major is answered ENOTSUP and the connection
 * closed (spec: the server closes when it cannot support the proposed version).
 *
 * Processing: replies (to our DMA_READ/DMA_WRITE) are matched as soon as they arrive; commands go
 * into one FIFO and run strictly one after another, each to its reply, even when the backend is
 * asynchronous. Every command gets exactly one reply unless it carries NO_REPLY (then none, even on
 * error; the error is logged). The only message that closes the connection instead is one whose
 * framing cannot be trusted: fewer than 16 bytes, header size < 16, or header size different from the
 * bytes delivered (with a header size over the limit the header alone is enough: E2BIG reply).
 *
 * Connections: one active client at a time. A second client that attaches while the first is still
 * connected is refused (its transport is closed at once, event `client-rejected`): two VMMs mapping
 * their memory into one function would corrupt both. After the first disconnects, the server drops
 * its DMA map, calls `backend.clientDetached()` (after any command still running), and the next
 * client may attach; its commands run after the detach.
 *
 * Compatibility: protocol major 0, minor ≤ 2; commands 1–13 and 15–18 (6 answered ENOTSUP; 15 only if
 * `writeMultiple` is enabled and the client proposed it).
 */
import { closeSync } from "node:fs";
import type { MaybePromise, VfioUserDeviceBackend } from "./device-backend.ts";
import { DmaTable } from "./dma-table.ts";
import { VfioUserError } from "./errors.ts";
import type { VfioUserEvent, VfioUserEventName, VfioUserLog } from "./events.ts";
import { isPromiseLike } from "./maybe-promise.ts";
import { Command, DmaMapFlag, Errno } from "./protocol/constants.ts";
import {
  decodeDmaReadReply,
  decodeDmaWriteReply,
  encodeDmaAccess,
  encodeDmaWriteRequest,
} from "./protocol/dma.ts";
import {
  checkHeader,
  decodeHeader,
  encodeCommand,
  encodeErrorReply,
  encodeReply,
  hasNoReply,
  isReply,
  type MessageHeader,
  payloadOf,
} from "./protocol/header.ts";
import { withDefaults } from "./protocol/version.ts";
import { isDecodeError } from "./protocol/wire.ts";
import { RequestTracker, type TrackedReply } from "./request-tracker.ts";
import {
  COMMAND_TABLE,
  type CommandContext,
  type CommandResult,
  type ServerLimits,
} from "./server-commands.ts";
import type { MessageTransport, TransportMessage } from "./transport.ts";

export interface VfioUserServerOptions {
  backend: VfioUserDeviceBackend;
  /** Most fds accepted in one message; advertised as max_msg_fds. Default 8, range 1–16 (QEMU refuses more). */
  maxMsgFds?: number;
  /**
   * Largest `count` of one region access or migration-data transfer; advertised as
   * max_data_xfer_size. Default 1048576 bytes (1 MiB), range 4096–67108864 (QEMU refuses above 64 MiB).
   */
  maxDataXferBytes?: number;
  /** Largest message accepted, header included. Default maxDataXferBytes + 4096 bytes; ≥ 4096. */
  maxMessageBytes?: number;
  /** migration.pgsize advertised (dirty-tracking page size). Default 4096 bytes. */
  migrationPgsizeBytes?: number;
  /** migration.max_bitmap_size advertised, bytes. Default: not advertised. */
  migrationMaxBitmapBytes?: number;
  /** Most DMA mappings at once (more → ENOSPC); advertised as max_dma_maps only if below 65535. Default 65535. */
  maxDmaMaps?: number;
  /** Offer REGION_WRITE_MULTI (command 15) to clients that propose write_multiple. Default false. */
  writeMultiple?: boolean;
  /** Timeout for the client's reply to a server DMA_READ/DMA_WRITE, ms. Default 5000; 0 = wait forever. */
  dmaTimeoutMs?: number;
  /** Closes an fd the server owns and does not keep. Default `fs.closeSync`, errors ignored. */
  closeFd?: (fd: number) => void;
  /** Receives the server's log events. Default: discarded. */
  log?: VfioUserLog;
}

class Session {
  open = true;
  /** Framing lost: ignore anything that still arrives; a close task is queued. */
  desynced = false;
  negotiated = false;
  peer = withDefaults(undefined);
  writeMultiple = false;
  readonly dma: DmaTable;
  constructor(
    readonly transport: MessageTransport,
    maxDmaMaps: number,
    /** Our DMA_READ/DMA_WRITE requests awaiting the client's reply. */
    readonly requests: RequestTracker,
  ) {
    this.dma = new DmaTable(maxDmaMaps);
  }
}

type Task =
  | { kind: "command"; session: Session; header: MessageHeader; bytes: Uint8Array; fds: number[] }
  /** Error reply decided from the header alone (oversize, unknown type). */
  | {
      kind: "reject";
      session: Session;
      header: MessageHeader;
      fds: number[];
      errno: number;
      event: VfioUserEventName;
    }
  | { kind: "close"; session: Session }
  | { kind: "detach"; session: Session };

/** What a command handler sees (a class, not closures: this runs for every message). */
class Context implements CommandContext {
  taken = false;
  constructor(
    readonly backend: VfioUserDeviceBackend,
    readonly limits: ServerLimits,
    readonly session: Session,
    readonly header: MessageHeader,
    readonly payload: Uint8Array,
    readonly fds: number[],
  ) {}
  takeFds(): void {
    this.taken = true;
  }
}

function defaultCloseFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed or never valid: nothing to release
  }
}

export class VfioUserServer {
  readonly #backend: VfioUserDeviceBackend;
  readonly #limits: ServerLimits;
  readonly #maxDmaMaps: number;
  readonly #dmaTimeoutMs: number;
  readonly #closeFd: (fd: number) => void;
  readonly #log: VfioUserLog | undefined;
  #session: Session | undefined;
  #queue: Task[] = [];
  #running = false;
  #closed = false;

  constructor(options: VfioUserServerOptions) {
    const maxMsgFds = options.maxMsgFds ?? 8;
    const maxDataXferBytes = options.maxDataXferBytes ?? 1048576;
    const maxMessageBytes = options.maxMessageBytes ?? maxDataXferBytes + 4096;
    if (!Number.isInteger(maxMsgFds) || maxMsgFds < 1 || maxMsgFds > 16)
      throw new RangeError("maxMsgFds: 1..16");
    if (!Number.isInteger(maxDataXferBytes) || maxDataXferBytes < 4096 || maxDataXferBytes > 64 * 1048576) {
      throw new RangeError("maxDataXferBytes: 4096..67108864");
    }
    if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 4096)
      throw new RangeError("maxMessageBytes: >= 4096");
    this.#maxDmaMaps = options.maxDmaMaps ?? 65535;
    const offer: ServerLimits["offer"] = {
      maxMsgFds,
      maxDataXferSize: maxDataXferBytes,
      migration: { pgsize: options.migrationPgsizeBytes ?? 4096 },
    };
    if (options.migrationMaxBitmapBytes !== undefined && offer.migration !== undefined) {
      offer.migration.maxBitmapSize = options.migrationMaxBitmapBytes;
    }
    if (this.#maxDmaMaps < 65535) offer.maxDmaMaps = this.#maxDmaMaps;
    if (options.writeMultiple === true) offer.writeMultiple = true;
    this.#limits = { maxMsgFds, maxDataXferBytes, maxMessageBytes, offer };
    this.#backend = options.backend;
    this.#dmaTimeoutMs = options.dmaTimeoutMs ?? 5000;
    this.#closeFd = options.closeFd ?? defaultCloseFd;
    this.#log = options.log;
  }

  /** True while a client connection is attached and open. */
  get connected(): boolean {
    return this.#session?.open === true;
  }

  /** True once the attached client completed VERSION. */
  get negotiated(): boolean {
    return this.#session?.open === true && this.#session.negotiated;
  }

  /**
   * Takes a new client connection. Returns false (and closes `transport`) if another client is still
   * connected or the server is closed.
   */
  attach(transport: MessageTransport): boolean {
    if (this.#closed || this.#session?.open === true) {
      this.#emit({ name: "client-rejected", level: "warn", detail: this.#closed ? "server-closed" : "busy" });
      transport.close();
      return false;
    }
    const requests = new RequestTracker(this.#dmaTimeoutMs, (id, command) =>
      this.#emit({ name: "dma-timeout", level: "error", id, command }),
    );
    const s = new Session(transport, this.#maxDmaMaps, requests);
    this.#session = s;
    transport.onMessage((m) => this.#onMessage(s, m));
    transport.onClose(() => this.#onClosed(s));
    this.#emit({ name: "client-attached", level: "info" });
    return true;
  }

  /** Closes the current client connection (if any) and refuses new ones. */
  close(): void {
    this.#closed = true;
    const s = this.#session;
    if (s !== undefined) this.#closeSession(s, "server-closed");
  }

  /** Disconnects the current client but keeps accepting new ones. */
  disconnect(): void {
    const s = this.#session;
    if (s !== undefined) this.#closeSession(s, "server-disconnect");
  }

  /**
   * Reads guest memory through DMA_READ messages (for ranges mapped without an fd, though any mapped
   * readable range works). The range must lie inside one readable mapping. Requests larger than the
   * client's max_data_xfer_size are split. Rejects with `VfioUserError` (not-connected,
   * invalid-request EFAULT, remote-error, bad-reply, timeout, disconnected).
   */
  dmaRead(iova: number, count: number): Promise<Uint8Array> {
    const s = this.#dmaSession(iova, count, DmaMapFlag.READ);
    if (s instanceof VfioUserError) return Promise.reject(s);
    const chunk = s.peer.maxDataXferSize;
    const parts: Promise<Uint8Array>[] = [];
    for (let off = 0; off < count; off += chunk) {
      const n = Math.min(chunk, count - off);
      const address = iova + off;
      parts.push(
        this.#request(s, Command.DMA_READ, encodeDmaAccess(address, n)).then(({ payload }) => {
          const r = decodeDmaReadReply(payload);
          if (isDecodeError(r) || r.address !== address || r.count !== n) {
            throw new VfioUserError("bad-reply", "DMA_READ reply does not match the request", {
              errno: Errno.EIO,
            });
          }
          return r.data;
        }),
      );
    }
    if (parts.length === 1) return parts[0]!.then((d) => d.slice());
    return Promise.all(parts).then((chunks) => {
      const out = new Uint8Array(count);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.byteLength;
      }
      return out;
    });
  }

  /** Writes guest memory through DMA_WRITE messages; same rules as `dmaRead` (writable mapping). */
  dmaWrite(iova: number, data: Uint8Array): Promise<void> {
    const s = this.#dmaSession(iova, data.byteLength, DmaMapFlag.WRITE);
    if (s instanceof VfioUserError) return Promise.reject(s);
    const chunk = s.peer.maxDataXferSize;
    const parts: Promise<void>[] = [];
    for (let off = 0; off < data.byteLength; off += chunk) {
      const piece = data.subarray(off, Math.min(off + chunk, data.byteLength));
      const address = iova + off;
      parts.push(
        this.#request(s, Command.DMA_WRITE, encodeDmaWriteRequest(address, piece)).then(({ payload }) => {
          const r = decodeDmaWriteReply(payload);
          const mismatch =
            isDecodeError(r) ||
            (r.address !== undefined && r.address !== address) ||
            (r.count !== undefined && r.count !== piece.byteLength);
          if (mismatch) {
            throw new VfioUserError("bad-reply", "DMA_WRITE reply does not match the request", {
              errno: Errno.EIO,
            });
          }
        }),
      );
    }
    return Promise.all(parts).then(() => undefined);
  }

  // ---------------------------------------------------------------- receive path

  #onMessage(s: Session, m: TransportMessage): void {
    if (!s.open || s.desynced) {
      this.#closeFds(m.fds);
      return;
    }
    const h = decodeHeader(m.bytes);
    if (isDecodeError(h)) {
      this.#desync(s, m.fds, "header-truncated", undefined);
      return;
    }
    const problem = checkHeader(h, this.#limits.maxMessageBytes);
    if (problem?.framing === true) {
      this.#desync(s, m.fds, "size-below-header", h);
      return;
    }
    // Over the limit is judged from the header alone (a socket transport may deliver only that).
    if (problem?.kind !== "size-over-limit" && h.sizeBytes !== m.bytes.byteLength) {
      this.#desync(s, m.fds, "size-mismatch", h);
      return;
    }
    if (isReply(h.flags)) {
      this.#closeFds(m.fds); // no fds belong on a reply to DMA_READ/DMA_WRITE
      if (problem?.kind === "size-over-limit") {
        this.#emit({ name: "message-too-large", level: "warn", id: h.id, command: h.command });
        const e = new VfioUserError("bad-reply", "reply over the size limit", { errno: Errno.E2BIG });
        s.requests.fail(h, e);
      } else {
        this.#onReply(s, h, payloadOf(m.bytes));
      }
      return;
    }
    if (problem !== undefined) {
      const event = problem.kind === "size-over-limit" ? "message-too-large" : "unknown-type";
      this.#enqueue({ kind: "reject", session: s, header: h, fds: m.fds, errno: problem.errno, event });
      return;
    }
    this.#enqueue({ kind: "command", session: s, header: h, bytes: m.bytes, fds: m.fds });
  }

  #desync(s: Session, fds: number[], event: VfioUserEventName, h: MessageHeader | undefined): void {
    this.#closeFds(fds);
    s.desynced = true;
    this.#emit(
      h === undefined
        ? { name: event, level: "warn" }
        : { name: event, level: "warn", id: h.id, command: h.command },
    );
    this.#enqueue({ kind: "close", session: s });
  }

  #onReply(s: Session, h: MessageHeader, payload: Uint8Array): void {
    if (!s.requests.settle({ header: h, payload, fds: [] })) {
      this.#emit({ name: "reply-unmatched", level: "warn", id: h.id, command: h.command });
    }
  }

  #onClosed(s: Session): void {
    if (!s.open) return;
    s.open = false;
    if (this.#session === s) this.#session = undefined;
    // Commands still queued for this connection will never be answered: release their fds now.
    this.#queue = this.#queue.filter((t) => {
      if (t.session !== s || t.kind === "detach") return true;
      if (t.kind === "command" || t.kind === "reject") this.#closeFds(t.fds);
      return false;
    });
    s.requests.failAll(
      () => new VfioUserError("disconnected", "client disconnected", { errno: Errno.ECONNRESET }),
    );
    this.#enqueue({ kind: "detach", session: s });
  }

  #closeSession(s: Session, why: string): void {
    if (!s.open) return;
    this.#emit({ name: "connection-closed-by-server", level: "warn", detail: why });
    s.transport.close();
    this.#onClosed(s);
  }

  // ---------------------------------------------------------------- the command FIFO

  #enqueue(t: Task): void {
    this.#queue.push(t);
    this.#pump();
  }

  #pump(): void {
    if (this.#running) return;
    this.#running = true;
    for (;;) {
      const t = this.#queue.shift();
      if (t === undefined) break;
      let r: MaybePromise<void>;
      try {
        r = this.#run(t);
      } catch (e) {
        this.#emit({ name: "backend-threw", level: "error", detail: String(e) });
        continue;
      }
      if (isPromiseLike(r)) {
        r.then(
          () => this.#resume(),
          (e: unknown) => {
            this.#emit({ name: "backend-threw", level: "error", detail: String(e) });
            this.#resume();
          },
        );
        return; // #running stays true until the promise settles
      }
    }
    this.#running = false;
  }

  #resume(): void {
    this.#running = false;
    this.#pump();
  }

  #run(t: Task): MaybePromise<void> {
    switch (t.kind) {
      case "command":
        return this.#runCommand(t.session, t.header, t.bytes, t.fds);
      case "reject":
        this.#closeFds(t.fds);
        if (t.session.open)
          this.#finish(t.session, t.header, { kind: "error", errno: t.errno, event: t.event });
        return;
      case "close":
        this.#closeSession(t.session, "framing-lost");
        return;
      case "detach":
        return this.#detach(t.session);
    }
  }

  #detach(s: Session): MaybePromise<void> {
    s.dma.clear();
    let r: MaybePromise<void>;
    try {
      r = this.#backend.clientDetached();
    } catch (e) {
      this.#emit({ name: "backend-threw", level: "error", detail: `clientDetached: ${String(e)}` });
      r = undefined;
    }
    const done = () => this.#emit({ name: "client-detached", level: "info" });
    if (isPromiseLike(r)) return r.then(done);
    done();
  }

  #runCommand(s: Session, h: MessageHeader, bytes: Uint8Array, fds: number[]): MaybePromise<void> {
    if (!s.open) {
      this.#closeFds(fds);
      return;
    }
    const early = this.#precheck(s, h, fds);
    if (early !== undefined) {
      this.#closeFds(fds);
      this.#finish(s, h, early);
      return;
    }
    const entry = COMMAND_TABLE.get(h.command)!;
    const ctx = new Context(this.#backend, this.#limits, s, h, payloadOf(bytes), fds);
    let r: MaybePromise<CommandResult>;
    try {
      r = entry.handler(ctx);
    } catch (e) {
      r = this.#threw(e);
    }
    if (isPromiseLike(r)) {
      return r.then(
        (res) => this.#complete(ctx, res),
        (e: unknown) => this.#complete(ctx, this.#threw(e)),
      );
    }
    this.#complete(ctx, r);
  }

  /** Closes the fds the handler did not hand over, then replies. */
  #complete(ctx: Context, r: CommandResult): void {
    if (!ctx.taken) this.#closeFds(ctx.fds);
    this.#finish(ctx.session, ctx.header, r);
  }

  #threw(e: unknown): CommandResult {
    return { kind: "error", errno: Errno.EIO, event: "backend-threw", detail: String(e) };
  }

  /** Checks that need no decoding: fd count, negotiation state, known command, fd policy. */
  #precheck(s: Session, h: MessageHeader, fds: number[]): CommandResult | undefined {
    if (fds.length > this.#limits.maxMsgFds)
      return { kind: "error", errno: Errno.EINVAL, event: "too-many-fds" };
    const entry = COMMAND_TABLE.get(h.command);
    if (entry === undefined) return { kind: "error", errno: Errno.ENOTSUP, event: "unknown-command" };
    if (!s.negotiated && h.command !== Command.VERSION) {
      return { kind: "error", errno: Errno.EINVAL, event: "command-before-version" };
    }
    if (entry.fds === "none" && fds.length > 0)
      return { kind: "error", errno: Errno.EINVAL, event: "unexpected-fds" };
    return undefined;
  }

  /** Sends the reply for `r` (unless NO_REPLY), then runs follow-up work or closes. */
  #finish(s: Session, h: MessageHeader, r: CommandResult): void {
    const noReply = hasNoReply(h.flags);
    if (r.kind === "ok") {
      if (!s.open) return;
      if (!noReply) this.#send(s, encodeReply(h.id, h.command, r.payload), r.fds ?? []);
      if (r.afterReply !== undefined) this.#runAfterReply(r.afterReply);
      return;
    }
    this.#emit({
      name: r.event,
      level: r.event === "backend-threw" ? "error" : "warn",
      id: h.id,
      command: h.command,
      errno: r.errno,
      ...(r.detail === undefined ? {} : { detail: r.detail }),
    });
    if (!noReply && s.open) this.#send(s, encodeErrorReply(h.id, h.command, r.errno), []);
    if (r.kind === "close") this.#closeSession(s, r.event);
  }

  #runAfterReply(f: () => MaybePromise<void>): void {
    try {
      const p = f();
      if (isPromiseLike(p)) {
        p.then(undefined, (e: unknown) =>
          this.#emit({ name: "backend-threw", level: "error", detail: `afterReply: ${String(e)}` }),
        );
      }
    } catch (e) {
      this.#emit({ name: "backend-threw", level: "error", detail: `afterReply: ${String(e)}` });
    }
  }

  // ---------------------------------------------------------------- send path

  #send(s: Session, bytes: Uint8Array, fds: number[]): void {
    try {
      s.transport.send(bytes, fds);
    } catch (e) {
      // The transport contract says send never throws; a broken transport must not break the server.
      this.#emit({ name: "connection-closed-by-server", level: "error", detail: `send threw: ${String(e)}` });
      this.#closeSession(s, "send-failed");
    }
  }

  #dmaSession(iova: number, count: number, need: number): Session | VfioUserError {
    const s = this.#session;
    if (s === undefined || !s.open || !s.negotiated) {
      return new VfioUserError("not-connected", "no negotiated client", { errno: Errno.ENOTCONN });
    }
    if (!Number.isSafeInteger(count) || count < 1) {
      return new VfioUserError("invalid-request", "DMA count must be a positive integer", {
        errno: Errno.EINVAL,
      });
    }
    const e = Number.isSafeInteger(iova) ? s.dma.find(iova, count) : undefined;
    if (e === undefined || (e.flags & need) === 0) {
      return new VfioUserError("invalid-request", `DMA [${iova}, +${count}) outside the client's mappings`, {
        errno: Errno.EFAULT,
      });
    }
    return s;
  }

  #request(s: Session, command: number, payload: Uint8Array): Promise<TrackedReply> {
    return s.requests.start(command, (id) => this.#send(s, encodeCommand(id, command, payload), []));
  }

  #closeFds(fds: readonly number[]): void {
    for (const fd of fds) {
      try {
        this.#closeFd(fd);
      } catch {
        // a closer that throws must not leave the rest open
      }
    }
  }

  #emit(e: VfioUserEvent): void {
    const log = this.#log;
    if (log === undefined) return;
    try {
      log(e);
    } catch {
      // logging must never break the protocol
    }
  }
}
