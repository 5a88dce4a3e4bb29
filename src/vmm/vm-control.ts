/**
 * The VM process's control channel: line-delimited JSON over a UNIX stream socket (`nvmig vm
 * --control PATH`), through which a migration driver stops the vCPUs, reads guest RAM and its CPU
 * dirty log, and moves the VM onto another device socket.
 *
 *   controller (orchestrator, test)                 VM process
 *     | connect PATH (socket file mode 0600) ───────────► |
 *     | {"id":1,"cmd":"hello"}\n ────────────────────────► |
 *     | ◄──────── {"id":1,"ok":true,"protocol":1,"commands":[…]}\n
 *     | {"id":2,"cmd":"pause"}\n ────────────────────────► | port.pause(): vCPUs stopped
 *     | ◄──────── {"id":2,"ok":true,"paused":true}\n
 *     | {"id":3,"cmd":"collectDirty"}\n ─────────────────► | CPU dirty log since the last collect
 *     | ◄──────── {"id":3,"ok":true,"pages":[5,6,900]}\n
 *     | {"id":4,"cmd":"readPages","pages":[5,6]}\n ───────► |
 *     | ◄──────── {"id":4,"ok":true,"pageBytes":4096,"data":"<base64 of the pages, in order>"}\n
 *     | {"id":5,"cmd":"retarget","socket":"/run/…/dst.sock"}\n ► | connect, VERSION, attach (RAM, doorbells, eventfds)
 *     | ◄──────── {"id":5,"ok":true}\n
 *     | {"id":6,"cmd":"resume"}\n ───────────────────────► | held accesses replayed to the new device
 *
 * Commands: hello, pause, resume, stats, startDirtyLog, collectDirty, stopDirtyLog, readPages,
 * retarget, stop (end the workload early: drain, verify, exit). Requests of one connection run one at
 * a time, in order; each gets exactly one reply line with the request's `id` echoed (any JSON value,
 * null when absent). Failures are replies `{"ok":false,"error":"<code>","message":"…"}` with a code of
 * `bad-request` (not JSON, no `cmd`, bad field), `unknown-command`, `failed` (the VM could not do it);
 * a line over `maxLineBytes` is answered `bad-request` and the connection closed.
 *
 * Compatibility rule: protocol 1. New commands and new reply fields may be added; unknown request
 * fields are ignored; a client checks `protocol` from `hello` and treats `unknown-command` as "not
 * supported by this VM". Existing commands never change meaning.
 */
import { chmodSync, renameSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";

export const VM_CONTROL_PROTOCOL = 1;

/** Most guest pages one `readPages` returns. */
export const MAX_READ_PAGES = 256;

export type VmControlErrorCode = "bad-request" | "unknown-command" | "failed";

/** What the VM does for each command (the VM process implements these). */
export interface VmControlHandlers {
  pause(): void;
  resume(): void;
  /** Any JSON-serialisable snapshot (workload, driver, port counters). */
  stats(): Record<string, unknown>;
  startDirtyLog(): void;
  /** Guest page numbers written by the CPU since the last collect (clears them). */
  collectDirty(): number[];
  stopDirtyLog(): void;
  /** The pages' bytes, concatenated in the order asked; throws RangeError for a page out of RAM. */
  readPages(pages: number[]): Uint8Array;
  /** Continue on the device at `socketPath` (the port is paused around the move if it was not). */
  retarget(socketPath: string): Promise<void>;
  /** End the workload early (it then drains, verifies and the process exits). */
  stop(): void;
  /** Guest page size, bytes. */
  readonly pageBytes: number;
  /**
   * More commands (the migration commands of `vm-migration.ts`): name → handler returning the reply's
   * fields; a thrown `VmControlRequestError` is answered with its code, any other error as `failed`.
   */
  readonly commands?: Readonly<
    Record<string, (req: Record<string, unknown>, connection: number) => Promise<Reply> | Reply>
  >;
  /** Control connection `connection` closed (the lease rule of a migration lives here). */
  onDisconnect?(connection: number): void;
}

export interface VmControlOptions {
  /** File mode of the socket. Default 0o600 (owner only). */
  socketMode?: number;
  /** Longest request line, bytes. Default 65536. */
  maxLineBytes?: number;
}

export interface VmControlServer {
  readonly path: string;
  /** Stops listening, closes every connection, removes the socket file. Idempotent. */
  close(): Promise<void>;
}

const COMMANDS = [
  "hello",
  "pause",
  "resume",
  "stats",
  "startDirtyLog",
  "collectDirty",
  "stopDirtyLog",
  "readPages",
  "retarget",
  "stop",
] as const;

type Reply = Record<string, unknown>;

export class VmControlRequestError extends Error {
  constructor(
    readonly code: VmControlErrorCode,
    message: string,
  ) {
    super(message);
  }
}

async function execute(
  h: VmControlHandlers,
  req: Record<string, unknown>,
  connection: number,
): Promise<Reply> {
  // Added commands first: they may also refine a built-in one (e.g. `pause` that records its caller).
  const extra = typeof req.cmd === "string" && h.commands !== undefined && Object.hasOwn(h.commands, req.cmd);
  if (extra) return h.commands![req.cmd as string]!(req, connection);
  switch (req.cmd) {
    case "hello":
      return {
        protocol: VM_CONTROL_PROTOCOL,
        commands: [...new Set([...COMMANDS, ...Object.keys(h.commands ?? {})])],
      };
    case "pause":
      h.pause();
      return { paused: true };
    case "resume":
      h.resume();
      return { paused: false };
    case "stats":
      return { stats: h.stats() };
    case "startDirtyLog":
      h.startDirtyLog();
      return {};
    case "collectDirty":
      return { pages: h.collectDirty() };
    case "stopDirtyLog":
      h.stopDirtyLog();
      return {};
    case "readPages": {
      const pages = req.pages;
      if (
        !Array.isArray(pages) ||
        pages.length > MAX_READ_PAGES ||
        !pages.every((p) => Number.isSafeInteger(p) && p >= 0)
      ) {
        throw new VmControlRequestError(
          "bad-request",
          `pages: an array of at most ${MAX_READ_PAGES} page numbers`,
        );
      }
      let data: Uint8Array;
      try {
        data = h.readPages(pages as number[]);
      } catch (e) {
        throw new VmControlRequestError("bad-request", (e as Error).message);
      }
      return {
        pageBytes: h.pageBytes,
        data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64"),
      };
    }
    case "retarget": {
      if (typeof req.socket !== "string" || req.socket.length === 0) {
        throw new VmControlRequestError(
          "bad-request",
          "socket: the path of the new device's vfio-user socket",
        );
      }
      await h.retarget(req.socket);
      return {};
    }
    case "stop":
      h.stop();
      return {};
    default:
      throw new VmControlRequestError("unknown-command", `unknown command ${JSON.stringify(req.cmd)}`);
  }
}

/** Listens at `path` (an existing file there is replaced) and serves `handlers`. */
export function startVmControl(
  path: string,
  handlers: VmControlHandlers,
  options: VmControlOptions = {},
): Promise<VmControlServer> {
  const maxLine = options.maxLineBytes ?? 65536;
  const sockets = new Set<Socket>();
  let closing = false;
  let connections = 0;
  const server: Server = createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      if (!closing) handlers.onDisconnect?.(connection);
    });
    socket.on("error", () => socket.destroy());
    let buffered = "";
    let chain: Promise<void> = Promise.resolve();
    const answer = (line: string): Promise<void> => {
      let id: unknown = null;
      let req: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(line);
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
          throw new Error("not an object");
        req = parsed as Record<string, unknown>;
        id = req.id ?? null;
        if (typeof req.cmd !== "string") throw new Error("no cmd");
      } catch (e) {
        socket.write(
          `${JSON.stringify({ id, ok: false, error: "bad-request", message: (e as Error).message })}\n`,
        );
        return Promise.resolve();
      }
      return execute(handlers, req, connection).then(
        (r) => {
          if (!socket.destroyed) socket.write(`${JSON.stringify({ id, ok: true, ...r })}\n`);
        },
        (e: unknown) => {
          const code = e instanceof VmControlRequestError ? e.code : "failed";
          if (!socket.destroyed)
            socket.write(
              `${JSON.stringify({ id, ok: false, error: code, message: (e as Error).message })}\n`,
            );
        },
      );
    };
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      for (;;) {
        const nl = buffered.indexOf("\n");
        if (nl < 0) break;
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line.length > 0) chain = chain.then(() => answer(line));
      }
      if (Buffer.byteLength(buffered) > maxLine) {
        socket.end(
          `${JSON.stringify({ id: null, ok: false, error: "bad-request", message: `line over ${maxLine} bytes` })}\n`,
        );
        buffered = "";
      }
    });
  });
  server.unref();
  // Bound and listening under a temporary name, given its mode, then renamed into place: whoever sees
  // `path` can connect at once (a bound Unix socket refuses connections until listen()), and it never
  // exists with a wider mode.
  const staging = `${path}.${process.pid}.tmp`;
  rmSync(staging, { force: true });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(staging, () => {
      server.off("error", reject);
      try {
        chmodSync(staging, options.socketMode ?? 0o600);
        renameSync(staging, path);
      } catch (e) {
        server.close();
        rmSync(staging, { force: true });
        reject(e);
        return;
      }
      let closed = false;
      resolve({
        path,
        close: () => {
          if (closed) return Promise.resolve();
          closed = true;
          closing = true;
          for (const s of sockets) s.destroy();
          rmSync(path, { force: true });
          return new Promise<void>((done) => server.close(() => done()));
        },
      });
    });
  });
}

/** A small client of the control channel (tests, orchestrators). Requests may be pipelined. */
export class VmControlClient {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Record<string, unknown>) => void>();
  private buffered = "";
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffered += chunk;
      for (;;) {
        const nl = this.buffered.indexOf("\n");
        if (nl < 0) break;
        const reply = JSON.parse(this.buffered.slice(0, nl)) as Record<string, unknown>;
        this.buffered = this.buffered.slice(nl + 1);
        const resolve = typeof reply.id === "number" ? this.waiting.get(reply.id) : undefined;
        if (resolve !== undefined) {
          this.waiting.delete(reply.id as number);
          resolve(reply);
        }
      }
    });
    const failAll = () => {
      this.closed = true;
      for (const resolve of this.waiting.values())
        resolve({ ok: false, error: "failed", message: "control connection closed" });
      this.waiting.clear();
    };
    socket.on("close", failAll);
    socket.on("error", failAll);
  }

  static connect(path: string): Promise<VmControlClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path, () => {
        s.off("error", reject);
        resolve(new VmControlClient(s));
      });
      s.once("error", reject);
    });
  }

  /** Sends one command; resolves with its reply object (`ok` false on failure, never rejects). */
  request(cmd: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    if (this.closed)
      return Promise.resolve({ id, ok: false, error: "failed", message: "control connection closed" });
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.socket.write(`${JSON.stringify({ ...args, id, cmd })}\n`);
    });
  }

  close(): void {
    this.socket.end();
  }
}
