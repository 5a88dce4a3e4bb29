/**
 * `nvmig vm --attach SOCKET`: a VMM process on one function exported over vfio-user — guest RAM in a
 * memfd shared with the server (DMA_MAP with the fd), the BAR0 doorbell page mmap'd, MSI-X through
 * eventfds — running the guest NVMe driver and the verified workload, then printing a summary (or one
 * JSON object) and resolving to the exit code: 0 iff the run verified (no lost write, bad read,
 * duplicate or missing completion, no I/O error).
 *
 *   runVmProcess
 *     memfd guest RAM ─ connect SOCKET ─ VERSION ─ DEVICE_RESET ─ VfioUserPort.attach ─ driver.init
 *     [--control PATH: vm-control.ts channel: pause / resume / stats / dirty log / readPages / retarget / stop]
 *     Workload.start → (ops | duration | SIGINT/SIGTERM | control "stop") → drain → verify (final read-back)
 *     driver.shutdown ─ port.detach ─ close ─ print
 *
 * A run with neither `ops` nor `durationMs` lasts until SIGINT/SIGTERM or a control "stop".
 */
import { GuestMemoryFd } from "../native/guest-memory-fd.ts";
import { VfioUserClient } from "../vfio-user/client.ts";
import { SocketTransport } from "../vfio-user/socket-transport.ts";
import { GUEST_PAGE_BYTES, GuestMemory } from "./guest-memory.ts";
import { decodeGuestState } from "./guest-state.ts";
import { RamReceiver } from "./migration-channel.ts";
import { GuestNvmeDriver } from "./nvme-driver.ts";
import type { VerifyReport } from "./verifier.ts";
import { VfioUserPort, type VfioUserPortEvent } from "./vfio-user-port.ts";
import { startVmControl, VmControlRequestError } from "./vm-control.ts";
import { createVmMigration, type VmMigration, type VmRole } from "./vm-migration.ts";
import { Workload, type WorkloadStats } from "./workload.ts";

const MiB = 1 << 20;

export interface VmProcessOptions {
  /** Path of the function's vfio-user UNIX socket. Required. */
  attach: string;
  /** Guest RAM, bytes. Default 64 MiB; a multiple of 4096, 4 MiB..4 GiB. Wins over `memoryMib`. */
  memoryBytes?: number;
  /** Guest RAM, MiB (the CLI's form). Default 64. */
  memoryMib?: number;
  /** I/O queues the driver creates and the workload uses. Default 1, range 1..64. Wins over `queues`. */
  ioQueues?: number;
  /** Same as `ioQueues` (the CLI's name). */
  queues?: number;
  /** Commands outstanding per queue. Default 16, range 1..1024. */
  queueDepth?: number;
  /** Bytes per command, a multiple of the LBA size. Default 4096. */
  blockBytes?: number;
  /** Share of reads, percent 0..100. Default 50. */
  readPercent?: number;
  /** LBA choice. Default "random". */
  pattern?: "random" | "sequential";
  /** Commands to issue in total, then drain and verify. Default unlimited. */
  ops?: number | undefined;
  /** Run time, ms, then drain and verify. Default unlimited. */
  durationMs?: number | undefined;
  /** Workload PRNG seed. Default 1. */
  seed?: number;
  /** Write verifiable patterns and check every read. Default true. */
  verify?: boolean;
  /** Print one JSON object instead of a human-readable summary. Default false. */
  json?: boolean;
  /** "interrupt" (default: MSI-X through eventfds) or "polling". */
  completionMode?: "interrupt" | "polling";
  /** Use shadow doorbells + EventIdx when the controller offers them. Default false. */
  shadowDoorbells?: boolean;
  /**
   * LBAs the workload uses: [first, count]. Default [0, min(namespace size, 262144)] — the verifier
   * keeps 9 bytes per LBA, so whole multi-terabyte namespaces are not tracked by default.
   */
  lbaRange?: readonly [number, number];
  /**
   * Wait for a migrated guest instead of booting one: listen for the source VMM's migration channel at
   * HOST:PORT (PORT 0 = any free port; `describe` on the control channel tells which). The function at
   * `attach` gets this VMM's RAM mapped at once, as the migration needs. Default: none (boot a guest).
   */
  incoming?: string;
  /**
   * After handing the guest over, how long to wait for the orchestrator to let go of the control
   * channel before exiting anyway, ms. Default 30000, range 0..2^31−1.
   */
  releaseTimeoutMs?: number;
  /** Serve the control channel (vm-control.ts) at this UNIX socket path. Default: none. */
  control?: string;
  /** vfio-user reply timeout, ms. Default 5000. */
  replyTimeoutMs?: number;
  /** Where the summary / JSON line goes. Default `console.log`. */
  out?: (line: string) => void;
  /** Where port warnings go. Default `console.error`. */
  err?: (line: string) => void;
}

/** The JSON object printed with `json` (and returned by `runVmProcessDetailed`). */
export interface VmProcessResult {
  /** True iff the run verified (with `verify: false`: no I/O error, duplicate or missing completion). */
  verified: boolean;
  /**
   * How the run ended here: absent when the guest ran to its end in this process (then verified);
   * "handed-over" when it moved to a destination VMM (verification happens there); "discarded" when an
   * incoming guest never arrived.
   */
  outcome?: "handed-over" | "discarded";
  ops: number;
  reads: number;
  writes: number;
  lostWrites: number;
  badReads: number;
  duplicateCompletions: number;
  missingCompletions: number;
  ioErrors: number;
  iops: number;
  mibPerSecond: number;
  elapsedMs: number;
  latencyUs: { mean: number; p50: number; p99: number; max: number };
  /** Whether the workload's data was checked (`verify` option). */
  verifyEnabled: boolean;
  completionMode: "interrupt" | "polling";
  shadowDoorbells: boolean;
  doorbellsMapped: boolean;
  interrupts: number;
  mmioDoorbells: number;
  postedWrites: number;
  failures: VerifyReport["failures"];
}

export class VmProcessError extends Error {
  override readonly name = "VmProcessError";
  constructor(
    readonly code: "invalid-argument" | "connect-failed",
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

/** Runs the VM (see the module comment); resolves to the exit code. */
export async function runVmProcess(opts: VmProcessOptions): Promise<number> {
  const r = await runVmProcessDetailed(opts);
  return r.verified ? 0 : 1;
}

function intOption(name: string, value: number, lo: number, hi: number): number {
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new VmProcessError("invalid-argument", `${name} ${value}: an integer in ${lo}..${hi}`);
  }
  return value;
}

/** `runVmProcess`, resolving to the result object instead of the exit code (still prints it). */
export async function runVmProcessDetailed(opts: VmProcessOptions): Promise<VmProcessResult> {
  const out = opts.out ?? ((l: string) => console.log(l));
  const err = opts.err ?? ((l: string) => console.error(l));
  const memoryBytes = intOption(
    "memoryBytes",
    opts.memoryBytes ?? (opts.memoryMib ?? 64) * MiB,
    4 * MiB,
    4 * 1024 * MiB,
  );
  if (memoryBytes % GUEST_PAGE_BYTES !== 0)
    throw new VmProcessError("invalid-argument", "memoryBytes: a multiple of 4096");
  const ioQueues = intOption("ioQueues", opts.ioQueues ?? opts.queues ?? 1, 1, 64);
  const queueDepth = intOption("queueDepth", opts.queueDepth ?? 16, 1, 1024);
  const blockBytes = intOption("blockBytes", opts.blockBytes ?? 4096, 512, 1 << 20);
  const completionMode = opts.completionMode ?? "interrupt";
  const shadowDoorbells = opts.shadowDoorbells ?? false;
  const verify = opts.verify ?? true;

  const ram = GuestMemoryFd.create("nvmig-guest-ram", memoryBytes);
  const cleanups: Array<() => unknown> = [() => ram.close()];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // keep cleaning up
      }
    }
    cleanups.length = 0;
  };
  try {
    const mem = new GuestMemory(ram.bytes());
    const logPort = (e: VfioUserPortEvent) => {
      if (e.level !== "info") err(`nvmig vm: ${e.name}${e.detail === undefined ? "" : `: ${e.detail}`}`);
      if (e.name === "server-disconnected") guest?.workload.stop().catch(() => {});
    };
    const connect = async (path: string): Promise<VfioUserClient> => {
      let transport: SocketTransport;
      try {
        transport = SocketTransport.connect(path);
      } catch (e) {
        throw new VmProcessError("connect-failed", `cannot connect to ${path}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      try {
        return await VfioUserClient.connect(transport, { replyTimeoutMs: opts.replyTimeoutMs ?? 5000 });
      } catch (e) {
        transport.close();
        throw new VmProcessError(
          "connect-failed",
          `vfio-user negotiation with ${path} failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
    };
    let client = await connect(opts.attach);
    cleanups.push(() => client.close());
    // As a VMM resets its devices at machine start (QEMU does, for an incoming VM too): whatever an
    // earlier VMM left — a migration state, a half-received stream, a suspended controller — is gone.
    try {
      await client.reset();
    } catch (e) {
      throw new VmProcessError(
        "connect-failed",
        `DEVICE_RESET of ${opts.attach} failed: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const port = await VfioUserPort.attach(client, ram, { log: logPort });
    cleanups.push(() => port.detach());

    let role: VmRole = opts.incoming === undefined ? "running" : "incoming";
    let guest: { driver: GuestNvmeDriver; workload: Workload } | undefined;
    let endRun: ((why: "handed-over" | "discarded") => void) | undefined;
    const ended = new Promise<"handed-over" | "discarded">((resolve) => {
      endRun = resolve;
    });
    const driverHooks = {};

    let incoming: RamReceiver | undefined;
    let migrationRef: VmMigration | undefined;
    let arriving = false;
    let pendingDiscard: string | undefined;
    const doDiscard = (reason: string) => {
      if (role !== "incoming") return;
      role = "discarded";
      err(`nvmig vm: incoming migration discarded: ${reason}`);
      void client.reset().catch(() => {});
      endRun?.("discarded");
    };
    let guestArrived: ((g: { driver: GuestNvmeDriver; workload: Workload }) => void) | undefined;
    const arrived = new Promise<{ driver: GuestNvmeDriver; workload: Workload }>((resolve) => {
      guestArrived = resolve;
    });
    if (opts.incoming !== undefined) {
      const [host, portText] = splitHostPort(opts.incoming);
      incoming = await RamReceiver.listen({
        host,
        port: Number(portText),
        ram: ram.bytes(),
        log: (e, d) => err(`nvmig vm: ${e}${d === undefined ? "" : `: ${d}`}`),
        onGuestState: async (bytes) => {
          if (role !== "incoming") throw new Error(`the VM is ${role}`);
          // A discard arriving meanwhile (the orchestrator died) waits for the outcome: once the guest
          // runs here the source has handed it over, so it must not be thrown away.
          arriving = true;
          try {
            const st = decodeGuestState(bytes, mem.sizeBytes);
            mem.loadAllocator(st.sections.memory);
            await port.loadInterruptState(st.sections.interrupts);
            let w: Workload | undefined;
            const driver = GuestNvmeDriver.restore(
              port,
              mem,
              st.sections.driver,
              (token) => (status, dw0, cid) => w!.callbackFor(token)(status, dw0, cid),
              driverHooks,
            );
            w = Workload.restore(driver, mem, st.sections.workload);
            guest = { driver, workload: w };
            role = "running";
            driver.resumeAfterMigration();
            migrationRef?.guestArrived();
            guestArrived?.(guest);
          } catch (e) {
            if (pendingDiscard !== undefined) doDiscard(pendingDiscard);
            throw e;
          } finally {
            arriving = false;
          }
        },
      });
      const inc = incoming;
      cleanups.push(() => inc.close());
    } else {
      const driver = new GuestNvmeDriver(port, mem, {
        ioQueues,
        ioQueueEntries: Math.max(64, queueDepth + 1),
        completionMode,
        shadowDoorbells,
        maxTransferBytes: Math.max(128 * 1024, blockBytes),
      });
      await driver.init();
      const nsid = Math.min(...driver.namespaces.keys());
      const ns = driver.namespaces.get(nsid);
      if (ns === undefined)
        throw new VmProcessError("invalid-argument", "the function has no active namespace");
      const lbaRange = opts.lbaRange ?? [0, Math.min(ns.nsze, 262144)];
      const workload = new Workload(driver, mem, {
        pattern: opts.pattern ?? "random",
        readPercent: opts.readPercent ?? 50,
        blockBytes,
        queueDepth,
        queues: Math.min(ioQueues, driver.ioQueueCount),
        nsid,
        lbaRange,
        ...(opts.ops === undefined ? {} : { ops: opts.ops }),
        ...(opts.durationMs === undefined ? {} : { durationMs: opts.durationMs }),
        seed: opts.seed ?? 1,
        verify,
      });
      guest = { driver, workload };
    }
    cleanups.push(() => (role === "running" ? guest?.driver.shutdown() : undefined));

    const noGuest = (): never => {
      throw new VmControlRequestError("failed", `the VM is ${role}: no guest runs here`);
    };
    let releaseNow: (() => void) | undefined;
    const releasedSignal = new Promise<void>((resolve) => {
      releaseNow = resolve;
    });
    const released = (timeoutMs: number) =>
      Promise.race([releasedSignal, new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]);
    const migration: VmMigration = createVmMigration({
      mem,
      port,
      client: () => client,
      guest: () => guest,
      role: () => role,
      incoming,
      handedOver: () => {
        role = "handed-over";
        endRun?.("handed-over");
      },
      discard: (reason) => {
        if (arriving) pendingDiscard = reason;
        else doDiscard(reason);
      },
      log: (e, d) => err(`nvmig vm: ${e}${d === undefined ? "" : `: ${d}`}`),
    });
    migrationRef = migration;

    if (opts.control !== undefined) {
      const control = await startVmControl(
        opts.control,
        {
          pageBytes: GUEST_PAGE_BYTES,
          pause: () => migration.pause(0),
          resume: () => migration.resume(),
          stats: () => ({
            role,
            paused: port.isPaused,
            workload: guest?.workload.stats() ?? null,
            driver: guest?.driver.stats() ?? null,
            port: port.stats(),
          }),
          startDirtyLog: () => mem.startDirtyLog(),
          collectDirty: () => Array.from(mem.collectDirty()),
          stopDirtyLog: () => mem.stopDirtyLog(),
          readPages: (pages) => {
            const data = new Uint8Array(pages.length * GUEST_PAGE_BYTES);
            pages.forEach((p, i) => {
              if (p >= mem.pageCount)
                throw new RangeError(`page ${p} is outside guest RAM (${mem.pageCount} pages)`);
              data.set(mem.view(p * GUEST_PAGE_BYTES, GUEST_PAGE_BYTES), i * GUEST_PAGE_BYTES);
            });
            return data;
          },
          retarget: async (path) => {
            const next = await connect(path);
            try {
              await port.retarget(next);
            } catch (e) {
              next.close();
              throw e;
            }
            const old = client;
            client = next;
            old.close();
          },
          stop: () => {
            const g = guest ?? noGuest();
            g.workload.stop().catch(() => {});
          },
          commands: {
            ...migration.commands,
            release: () => {
              if (role !== "handed-over") throw new VmControlRequestError("failed", `the VM is ${role}`);
              releaseNow?.();
              return {};
            },
            pause: (_req, connection) => {
              migration.pause(connection);
              return { paused: true };
            },
          },
          onDisconnect: (connection) => {
            if (role === "handed-over") releaseNow?.();
            migration.onDisconnect(connection);
          },
        },
        // Device data chunks travel base64 in one line (up to 16 MiB of data → ~22 MB of text).
        { maxLineBytes: 32 << 20 },
      );
      cleanups.push(() => control.close());
    }

    const onSignal = () => {
      if (guest === undefined) endRun?.("discarded");
      else guest.workload.stop().catch(() => {});
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    cleanups.push(() => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    });

    // Run: the guest here from the start, or once it arrives; until it ends, moves away or is discarded.
    const g = guest ?? (await Promise.race([arrived, ended]));
    if (g === "handed-over" || g === "discarded") {
      const r = movedResult(g);
      await cleanup();
      out(opts.json === true ? JSON.stringify(r) : `nvmig vm on ${opts.attach}: ${g}`);
      return r;
    }
    const finished = opts.incoming === undefined ? g.workload.start() : g.workload.resumeRestored();
    const stats = await Promise.race([finished, ended]);
    if (stats === "handed-over" || stats === "discarded" || g.workload.hasMigratedAway) {
      // The orchestrator still tidies up this side (dirty log off, function to STOP): stay until it
      // lets go of the control channel (or says `release`), at most `releaseTimeoutMs`.
      await released(opts.releaseTimeoutMs ?? 30_000);
      const r = movedResult("handed-over", g.workload.stats());
      await cleanup();
      out(opts.json === true ? JSON.stringify(r) : `nvmig vm on ${opts.attach}: handed over`);
      return r;
    }
    const report = verify ? await g.workload.verify() : undefined;
    g.workload.release();
    const result = summarize(stats, report, verify, port, g.driver, completionMode);
    await cleanup();
    out(opts.json === true ? JSON.stringify(result) : humanSummary(result, opts.attach));
    return result;
  } finally {
    await cleanup();
  }
}

/** The result of a VM process whose guest moved to another VMM (or never arrived). */
function movedResult(outcome: "handed-over" | "discarded", s?: WorkloadStats): VmProcessResult {
  return {
    verified: outcome === "handed-over",
    outcome,
    ops: s?.ops ?? 0,
    reads: s?.reads ?? 0,
    writes: s?.writes ?? 0,
    lostWrites: 0,
    badReads: 0,
    duplicateCompletions: 0,
    missingCompletions: 0,
    ioErrors: s?.errors ?? 0,
    iops: 0,
    mibPerSecond: 0,
    elapsedMs: 0,
    latencyUs: { mean: 0, p50: 0, p99: 0, max: 0 },
    verifyEnabled: false,
    completionMode: "interrupt",
    shadowDoorbells: false,
    doorbellsMapped: false,
    interrupts: 0,
    mmioDoorbells: 0,
    postedWrites: 0,
    failures: [],
  };
}

function splitHostPort(text: string): [string, string] {
  const at = text.lastIndexOf(":");
  const host = at <= 0 ? "127.0.0.1" : text.slice(0, at);
  const port = at < 0 ? text : text.slice(at + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535)
    throw new VmProcessError("invalid-argument", `incoming ${text}: HOST:PORT (PORT 0 = any free port)`);
  return [host, port];
}

function summarize(
  s: WorkloadStats,
  report: VerifyReport | undefined,
  verify: boolean,
  port: VfioUserPort,
  driver: GuestNvmeDriver,
  completionMode: "interrupt" | "polling",
): VmProcessResult {
  const ds = driver.stats();
  const ps = port.stats();
  const dup = (report?.duplicateCompletions ?? 0) + s.duplicateCompletions + ds.duplicateCompletions;
  const missing = report?.missingCompletions ?? s.missingCompletions;
  const ioErrors = report?.ioErrors ?? s.errors;
  const verified = verify
    ? report!.verified && ds.duplicateCompletions === 0
    : ioErrors === 0 && dup === 0 && missing === 0;
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    verified,
    ops: s.ops,
    reads: s.reads,
    writes: s.writes,
    lostWrites: report?.lostWrites ?? 0,
    badReads: report?.badReads ?? 0,
    duplicateCompletions: dup,
    missingCompletions: missing,
    ioErrors,
    iops: Math.round(s.iops),
    mibPerSecond: r3(s.mibPerSecond),
    elapsedMs: r3(s.elapsedMs),
    latencyUs: {
      mean: r3(s.latency.meanUs),
      p50: s.latency.p50Us,
      p99: s.latency.p99Us,
      max: r3(s.latency.maxUs),
    },
    verifyEnabled: verify,
    completionMode,
    shadowDoorbells: driver.shadowDoorbellsActive,
    doorbellsMapped: port.doorbellsMapped,
    interrupts: ps.interruptsDelivered,
    mmioDoorbells: ps.mmioDoorbells,
    postedWrites: ps.postedWrites,
    failures: report?.failures ?? [],
  };
}

function humanSummary(r: VmProcessResult, socket: string): string {
  const lines = [
    `nvmig vm on ${socket}: ${r.verified ? "VERIFIED" : "NOT VERIFIED"}`,
    `  ops ${r.ops} (reads ${r.reads}, writes ${r.writes}) in ${r.elapsedMs} ms: ${r.iops} IOPS, ${r.mibPerSecond} MiB/s`,
    `  latency µs: mean ${r.latencyUs.mean}, p50 ${r.latencyUs.p50}, p99 ${r.latencyUs.p99}, max ${r.latencyUs.max}`,
    `  lost writes ${r.lostWrites}, bad reads ${r.badReads}, duplicate completions ${r.duplicateCompletions}, ` +
      `missing completions ${r.missingCompletions}, I/O errors ${r.ioErrors}${r.verifyEnabled ? "" : " (data not verified: --no-verify)"}`,
    `  ${r.completionMode} mode, ${r.interrupts} interrupts, doorbells ${r.doorbellsMapped ? "mmap'd" : "by message"} ` +
      `(${r.mmioDoorbells} stores)${r.shadowDoorbells ? ", shadow doorbells" : ""}`,
  ];
  for (const f of r.failures.slice(0, 5))
    lines.push(`  ${f.kind}${f.lba === undefined ? "" : ` LBA ${f.lba}`}: ${f.detail}`);
  return lines.join("\n");
}
