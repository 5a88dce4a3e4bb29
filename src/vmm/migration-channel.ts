/**
 * The migration channel between two VMM processes: guest RAM pages, then the guest's own state (see
 * `guest-state.ts`), over one TCP connection from the source VMM to the destination VMM — as QEMU's
 * migration stream carries RAM and vCPU state between QEMU processes.
 *
 *   source VMM (RamSender)                          destination VMM (RamReceiver, `--incoming`)
 *     connect host:port ──────────────────────────────► accept (one source at a time)
 *     HELLO {protocol, ramBytes, pageBytes} ─────────► RAM size checked
 *     ◄──────────────────────────────────────────────  ACK seq 0 (or status ≠ 0 + message: refused)
 *     PAGES seq n: count, page numbers, page bytes ──► copied into guest RAM
 *     … (many; the sender waits only for the ACK of the last frame of a batch)
 *     ◄──────────────────────────────────────────────  ACK seq n
 *     GUEST_STATE seq m: the saved guest ────────────► restored, guest started (the commit point)
 *     ◄──────────────────────────────────────────────  ACK seq m (status 0: the guest runs here)
 *
 * Framing: u32 payload length (LE), u8 type, payload. PAGES payload: u32 seq, u32 count, count × u32
 * page number, count × 4096 bytes. GUEST_STATE: u32 seq, state bytes. ACK: u32 seq, u8 status
 * (0 ok, 1 refused), UTF-8 message. HELLO: u32 seq (0), UTF-8 JSON.
 *
 * Peer mistakes (unknown frame type, a page outside RAM, a frame over `MAX_FRAME_BYTES`, a wrong RAM
 * size) are answered with a refusing ACK and the connection is closed; RAM outside the named pages is
 * never touched. Compatibility rule: `protocol` 1; a receiver refuses a HELLO of another protocol.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

export const MIGRATION_CHANNEL_PROTOCOL = 1;
export const CHANNEL_PAGE_BYTES = 4096;
/** Pages per PAGES frame. */
export const PAGES_PER_FRAME = 256;
/** Largest frame accepted, bytes (a full PAGES frame, or a guest state). */
export const MAX_FRAME_BYTES = 64 << 20;

export const FrameType = { HELLO: 1, PAGES: 2, GUEST_STATE: 3, ACK: 4 } as const;

export class MigrationChannelError extends Error {
  override readonly name = "MigrationChannelError";
  constructor(
    readonly code: "connect-failed" | "refused" | "closed" | "protocol",
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

function frame(type: number, payload: Uint8Array[]): Buffer {
  const len = payload.reduce((n, p) => n + p.byteLength, 0);
  const head = Buffer.alloc(5);
  head.writeUInt32LE(len, 0);
  head.writeUInt8(type, 4);
  return Buffer.concat([head, ...payload.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** Splits a byte stream into frames; calls `onFrame(type, payload)` for each. */
class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  constructor(
    private readonly onFrame: (type: number, payload: Buffer) => void,
    private readonly onError: (message: string) => void,
  ) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    for (;;) {
      if (this.buffered < 5) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.chunks = [all];
      const len = all.readUInt32LE(0);
      if (len > MAX_FRAME_BYTES) {
        this.onError(`frame of ${len} bytes over the ${MAX_FRAME_BYTES}-byte limit`);
        this.chunks = [];
        this.buffered = 0;
        return;
      }
      if (this.buffered < 5 + len) return;
      const type = all.readUInt8(4);
      const payload = all.subarray(5, 5 + len);
      const rest = all.subarray(5 + len);
      this.chunks = rest.byteLength > 0 ? [rest] : [];
      this.buffered = rest.byteLength;
      this.onFrame(type, payload);
    }
  }
}

// ------------------------------------------------------------------------------------------ sender

export class RamSender {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private closedError: MigrationChannelError | undefined;
  /** Page bytes sent so far. */
  bytesSent = 0;

  private constructor(private readonly socket: Socket) {
    const reader = new FrameReader(
      (type, payload) => {
        if (type !== FrameType.ACK || payload.byteLength < 5)
          return this.fail("protocol", "unexpected frame");
        const seq = payload.readUInt32LE(0);
        const status = payload.readUInt8(4);
        const w = this.waiting.get(seq);
        if (w === undefined) return;
        this.waiting.delete(seq);
        if (status === 0) w.resolve();
        else
          w.reject(
            new MigrationChannelError(
              "refused",
              payload.subarray(5).toString("utf8") || "refused by the destination",
            ),
          );
      },
      (m) => this.fail("protocol", m),
    );
    socket.on("data", (c: Buffer) => reader.push(c));
    socket.on("close", () => this.fail("closed", "the destination VMM closed the migration channel"));
    socket.on("error", (e) => this.fail("closed", `migration channel: ${e.message}`));
  }

  private fail(code: MigrationChannelError["code"], message: string): void {
    this.closedError ??= new MigrationChannelError(code, message);
    for (const w of this.waiting.values()) w.reject(this.closedError);
    this.waiting.clear();
    this.socket.destroy();
  }

  /** Connects and introduces the source (HELLO). @throws MigrationChannelError */
  static async connect(host: string, port: number, ramBytes: number): Promise<RamSender> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ host, port }, () => {
        s.off("error", reject);
        resolve(s);
      });
      s.once("error", (e) =>
        reject(
          new MigrationChannelError("connect-failed", `migration channel to ${host}:${port}: ${e.message}`, {
            cause: e,
          }),
        ),
      );
    });
    socket.setNoDelay(true);
    const sender = new RamSender(socket);
    const hello = JSON.stringify({
      protocol: MIGRATION_CHANNEL_PROTOCOL,
      ramBytes,
      pageBytes: CHANNEL_PAGE_BYTES,
    });
    await sender.send(FrameType.HELLO, [Buffer.from(hello, "utf8")]);
    return sender;
  }

  private send(type: number, body: Uint8Array[]): Promise<void> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const seq = type === FrameType.HELLO ? 0 : ++this.seq;
    const p = new Promise<void>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
    p.catch(() => {}); // awaited by the caller; this only keeps an early refusal from being "unhandled"
    this.socket.write(frame(type, [u32(seq), ...body]));
    return p;
  }

  /**
   * Sends `pages` (read through `pageBytes(page)`, valid until the next call), in frames of
   * `PAGES_PER_FRAME`; resolves once the destination acknowledged the last one.
   */
  async sendPages(pages: ArrayLike<number>, pageBytes: (page: number) => Uint8Array): Promise<number> {
    let last: Promise<void> | undefined;
    const acks: Promise<void>[] = [];
    for (let i = 0; i < pages.length; i += PAGES_PER_FRAME) {
      const n = Math.min(PAGES_PER_FRAME, pages.length - i);
      const head = Buffer.alloc(4 + 4 * n);
      head.writeUInt32LE(n, 0);
      const data = Buffer.allocUnsafe(n * CHANNEL_PAGE_BYTES);
      for (let k = 0; k < n; k++) {
        const p = pages[i + k]!;
        head.writeUInt32LE(p >>> 0, 4 + 4 * k);
        data.set(pageBytes(p), k * CHANNEL_PAGE_BYTES);
      }
      last = this.send(FrameType.PAGES, [head, data]);
      acks.push(last);
      this.bytesSent += n * CHANNEL_PAGE_BYTES;
      // Keep the socket's buffer bounded: wait for the peer every 16 frames (16 MiB).
      if (acks.length >= 16) await acks.shift();
    }
    await Promise.all(acks);
    return pages.length;
  }

  /** Sends the guest state; resolves once the destination runs the guest (its ACK). */
  sendGuestState(state: Uint8Array): Promise<void> {
    return this.send(FrameType.GUEST_STATE, [state]);
  }

  close(): void {
    this.closedError ??= new MigrationChannelError("closed", "closed by this side");
    this.socket.end();
  }
}

// ---------------------------------------------------------------------------------------- receiver

export interface RamReceiverOptions {
  /** Bind address. Default "127.0.0.1". */
  host?: string;
  /** TCP port; 0 (default) = any free port. */
  port?: number;
  /** Guest RAM the pages go into (the destination VMM's memfd mapping). */
  ram: Uint8Array;
  /** Called with the guest state; resolve once the guest runs here, throw to refuse. */
  onGuestState(state: Uint8Array): Promise<void>;
  /** Named events (connections, refusals). Default: discarded. */
  log?: (event: string, detail?: string) => void;
}

export class RamReceiver {
  /** Page bytes received so far. */
  bytesReceived = 0;
  private active: Socket | undefined;
  private guestStateTaken = false;

  private constructor(
    private readonly server: Server,
    private readonly o: RamReceiverOptions,
    readonly port: number,
    readonly host: string,
  ) {}

  static listen(o: RamReceiverOptions): Promise<RamReceiver> {
    const host = o.host ?? "127.0.0.1";
    return new Promise((resolve, reject) => {
      let receiver: RamReceiver | undefined;
      const server = createServer((s) => receiver?.accept(s));
      server.once("error", reject);
      server.listen(o.port ?? 0, host, () => {
        server.off("error", reject);
        const addr = server.address();
        const port = typeof addr === "object" && addr !== null ? addr.port : 0;
        receiver = new RamReceiver(server, o, port, host);
        resolve(receiver);
      });
    });
  }

  /** True once a guest state was accepted (the guest runs here). */
  get guestStarted(): boolean {
    return this.guestStateTaken;
  }

  private accept(s: Socket): void {
    const log = this.o.log ?? (() => {});
    if (this.active !== undefined || this.guestStateTaken) {
      log("channel-refused", "a migration channel is already open");
      s.destroy();
      return;
    }
    this.active = s;
    s.setNoDelay(true);
    log("channel-connected", `${s.remoteAddress}:${s.remotePort}`);
    let hello = false;
    let chain = Promise.resolve();
    const ack = (seq: number, ok: boolean, message = "") => {
      if (!s.destroyed)
        s.write(frame(FrameType.ACK, [u32(seq), Buffer.from([ok ? 0 : 1]), Buffer.from(message, "utf8")]));
      if (!ok) {
        log("channel-refused", message);
        s.end();
      }
    };
    const ram = this.o.ram;
    const pageCount = Math.floor(ram.byteLength / CHANNEL_PAGE_BYTES);
    const onFrame = (type: number, payload: Buffer) => {
      if (payload.byteLength < 4) return ack(0, false, "frame without a sequence number");
      const seq = payload.readUInt32LE(0);
      const body = payload.subarray(4);
      if (type === FrameType.HELLO) {
        let h: { protocol?: unknown; ramBytes?: unknown; pageBytes?: unknown };
        try {
          h = JSON.parse(body.toString("utf8")) as typeof h;
        } catch {
          return ack(seq, false, "HELLO is not JSON");
        }
        if (h.protocol !== MIGRATION_CHANNEL_PROTOCOL)
          return ack(seq, false, `protocol ${String(h.protocol)}`);
        if (h.ramBytes !== ram.byteLength || h.pageBytes !== CHANNEL_PAGE_BYTES)
          return ack(seq, false, `RAM ${String(h.ramBytes)} bytes, this VMM has ${ram.byteLength}`);
        hello = true;
        return ack(seq, true);
      }
      if (!hello) return ack(seq, false, "HELLO first");
      if (type === FrameType.PAGES) {
        if (body.byteLength < 4) return ack(seq, false, "PAGES frame too short");
        const n = body.readUInt32LE(0);
        if (n > PAGES_PER_FRAME || body.byteLength !== 4 + 4 * n + n * CHANNEL_PAGE_BYTES)
          return ack(seq, false, `PAGES frame of ${n} pages has ${body.byteLength} bytes`);
        const dataAt = 4 + 4 * n;
        for (let k = 0; k < n; k++) {
          if (body.readUInt32LE(4 + 4 * k) >= pageCount)
            return ack(seq, false, `page ${body.readUInt32LE(4 + 4 * k)} outside RAM`);
        }
        for (let k = 0; k < n; k++) {
          const p = body.readUInt32LE(4 + 4 * k);
          ram.set(
            body.subarray(dataAt + k * CHANNEL_PAGE_BYTES, dataAt + (k + 1) * CHANNEL_PAGE_BYTES),
            p * CHANNEL_PAGE_BYTES,
          );
        }
        this.bytesReceived += n * CHANNEL_PAGE_BYTES;
        return ack(seq, true);
      }
      if (type === FrameType.GUEST_STATE) {
        const state = Buffer.from(body); // own copy: the frame buffer is reused
        chain = chain.then(() =>
          this.o.onGuestState(state).then(
            () => {
              this.guestStateTaken = true;
              ack(seq, true);
            },
            (e: unknown) => ack(seq, false, `guest state refused: ${(e as Error).message}`),
          ),
        );
        return;
      }
      return ack(seq, false, `unknown frame type ${type}`);
    };
    const reader = new FrameReader(onFrame, (m) => ack(0, false, m));
    s.on("data", (c: Buffer) => reader.push(c));
    s.on("error", () => s.destroy());
    s.on("close", () => {
      if (this.active === s) this.active = undefined;
      log("channel-closed");
    });
  }

  close(): Promise<void> {
    this.active?.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}
