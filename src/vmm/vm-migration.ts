/**
 * The migration side of a VM process (`nvmig vm`): the control commands an orchestrator uses to move
 * the VM to a destination VMM process, and the lease rule that brings the VM back when the
 * orchestrator goes away mid-migration.
 *
 *   orchestrator            source VMM (this, role "running")        destination VMM (role "incoming")
 *     device {op…} ───────► its vfio-user client: DEVICE_FEATURE / MIG_DATA_READ / WRITE
 *     device {op…} ─────────────────────────────────────────────────► the same, on its function
 *     migrateConnect ─────► RamSender ══ TCP ═══════════════════════► RamReceiver (guest RAM)
 *     sendPages {all|pages} ► PAGES frames ═════════════════════════► pages into RAM, ACK
 *     pause ──────────────► port.pause + driver.freeze (vCPUs stopped)
 *     handover ───────────► guest state ══ GUEST_STATE ═════════════► restore, resume: the guest runs
 *                           this copy ends ("handed over")             there, then `describe` says running
 *
 * Lease: while a migration is in progress (a `migrateConnect`, `pause` or `device` call, until
 * `resume` or `handover`), the control connection that started it is the lease. If it closes (the
 * orchestrator died), the source VM takes its function back to RUNNING (through its own client) and
 * resumes its vCPUs; an incoming VM that has not received its guest resets its function and exits.
 * The guest therefore runs on exactly one side whatever dies.
 *
 * Commands added to `vm-control.ts` (same compatibility rule): describe, dirtyPageCount,
 * migrateConnect {host, port}, sendPages {all: true | pages: number[]}, handover, device {op, …},
 * discard.
 */

import { serveDeviceRequest } from "../migration/cross-process/device-relay.ts";
import { vfioUserDeviceEndpoint } from "../migration/cross-process/vfio-user-device-endpoint.ts";
import { MigState } from "../vfio/states.ts";
import type { VfioUserClient } from "../vfio-user/client.ts";
import { GUEST_PAGE_BYTES, type GuestMemory } from "./guest-memory.ts";
import { encodeGuestState } from "./guest-state.ts";
import { type RamReceiver, RamSender } from "./migration-channel.ts";
import type { GuestNvmeDriver } from "./nvme-driver.ts";
import type { VfioUserPort } from "./vfio-user-port.ts";
import { VmControlRequestError } from "./vm-control.ts";
import type { Workload } from "./workload.ts";

export type VmRole = "running" | "incoming" | "handed-over" | "discarded";

/** What the migration commands need from the VM process. */
export interface VmMigrationContext {
  readonly mem: GuestMemory;
  readonly port: VfioUserPort;
  client(): VfioUserClient;
  /** The guest, once it runs in this process. */
  guest(): { driver: GuestNvmeDriver; workload: Workload } | undefined;
  role(): VmRole;
  /** The incoming listener (role "incoming" only). */
  readonly incoming: RamReceiver | undefined;
  /** The guest now runs in the destination VMM: end this process's run. */
  handedOver(): void;
  /** The incoming migration was abandoned: reset the function and end. */
  discard(reason: string): void;
  log(event: string, detail?: string): void;
}

export interface VmMigration {
  readonly commands: Record<
    string,
    (
      req: Record<string, unknown>,
      connection: number,
    ) => Promise<Record<string, unknown>> | Record<string, unknown>
  >;
  /** vCPUs stop (control `pause`): port paused, driver frozen. */
  pause(connection: number): void;
  /** vCPUs run again (control `resume`, rollback). */
  resume(): void;
  onDisconnect(connection: number): void;
  /** The incoming guest runs here now: the migration (and its lease) is over on this side. */
  guestArrived(): void;
}

function bad(message: string): never {
  throw new VmControlRequestError("bad-request", message);
}

export function createVmMigration(ctx: VmMigrationContext): VmMigration {
  let sender: RamSender | undefined;
  /** Resolves true once the destination runs the guest, false if it refused (while a handover is on its way). */
  let handoverInFlight: Promise<boolean> | undefined;
  /** The control connection that owns the migration in progress (the lease), if any. */
  let owner: number | undefined;
  const claim = (connection: number) => {
    owner ??= connection;
  };
  const endMigration = () => {
    owner = undefined;
    sender?.close();
    sender = undefined;
  };

  const pause = (connection: number) => {
    claim(connection);
    ctx.port.pause();
    ctx.guest()?.driver.freeze();
  };
  const resume = () => {
    ctx.guest()?.driver.thaw();
    ctx.port.resume();
  };

  const running = () => {
    const g = ctx.guest();
    if (ctx.role() !== "running" || g === undefined)
      throw new VmControlRequestError("failed", `the VM is ${ctx.role()}, not running here`);
    return g;
  };

  const describeReply = () => ({
    role: ctx.role(),
    ramBytes: ctx.mem.sizeBytes,
    pageBytes: GUEST_PAGE_BYTES,
    paused: ctx.port.isPaused,
    frozen: ctx.guest()?.driver.isFrozen ?? false,
    incoming: ctx.incoming === undefined ? null : { host: ctx.incoming.host, port: ctx.incoming.port },
    migrationInProgress: owner !== undefined,
  });

  const commands: VmMigration["commands"] = {
    describe: (_req, connection) => {
      // An incoming VM's lease starts with its orchestrator's first look (it may die before any device request).
      if (ctx.role() === "incoming") claim(connection);
      return describeReply();
    },
    dirtyPageCount: () => ({ count: ctx.mem.dirtyPageCount }),
    migrateConnect: async (req, connection) => {
      running();
      const host = req.host;
      const port = req.port;
      if (typeof host !== "string" || host.length === 0) bad("host: the destination VMM's address");
      if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) bad("port: 1..65535");
      claim(connection);
      sender?.close();
      try {
        sender = await RamSender.connect(host, port as number, ctx.mem.sizeBytes);
      } catch (e) {
        throw new VmControlRequestError("failed", (e as Error).message);
      }
      ctx.log("migration-connected", `${host}:${String(port)}`);
      return {};
    },
    sendPages: async (req) => {
      running();
      if (sender === undefined)
        throw new VmControlRequestError("failed", "no migration channel (migrateConnect)");
      let pages: ArrayLike<number>;
      if (req.all === true) pages = Uint32Array.from({ length: ctx.mem.pageCount }, (_, i) => i);
      else if (
        Array.isArray(req.pages) &&
        req.pages.every((p) => Number.isInteger(p) && p >= 0 && p < ctx.mem.pageCount)
      )
        pages = req.pages as number[];
      else bad(`pages: page numbers below ${ctx.mem.pageCount}, or all: true`);
      const bytes = ctx.mem.bytes;
      try {
        const sent = await sender.sendPages(pages, (p) =>
          bytes.subarray(p * GUEST_PAGE_BYTES, (p + 1) * GUEST_PAGE_BYTES),
        );
        return { sent };
      } catch (e) {
        throw new VmControlRequestError("failed", (e as Error).message);
      }
    },
    handover: async () => {
      const g = running();
      if (sender === undefined)
        throw new VmControlRequestError("failed", "no migration channel (migrateConnect)");
      if (!g.driver.isFrozen) throw new VmControlRequestError("failed", "pause the VM first");
      const state = encodeGuestState(ctx.mem.sizeBytes, {
        memory: ctx.mem.saveAllocator(),
        driver: g.driver.saveState(g.workload.ioTokenOf),
        workload: g.workload.saveState(),
        interrupts: ctx.port.saveInterruptState(),
      });
      // While the guest state is on its way the lease rule waits for the answer (see onDisconnect):
      // resuming here before the destination says no would run the guest on both sides.
      const sent = sender.sendGuestState(state);
      handoverInFlight = sent.then(
        () => true,
        () => false,
      );
      try {
        await sent;
      } catch (e) {
        // The destination did not start the guest: it stays here, frozen, for the orchestrator to resume.
        throw new VmControlRequestError("failed", (e as Error).message);
      } finally {
        handoverInFlight = undefined;
      }
      endMigration();
      g.workload.endMigratedAway();
      g.driver.endMigratedAway();
      ctx.port.dropHeld();
      ctx.log("handed-over", `${state.byteLength} bytes of guest state`);
      ctx.handedOver();
      return { stateBytes: state.byteLength };
    },
    device: (req, connection) => {
      if (ctx.role() === "discarded") throw new VmControlRequestError("failed", `the VM is ${ctx.role()}`);
      if (req.op !== "migrationFlags" && req.op !== "dataSize" && req.op !== "precopyInfo") claim(connection);
      return serveDeviceRequest(vfioUserDeviceEndpoint(ctx.client()), req);
    },
    discard: () => {
      if (ctx.role() !== "incoming") throw new VmControlRequestError("failed", `the VM is ${ctx.role()}`);
      ctx.discard("discarded by the orchestrator");
      return {};
    },
  };

  const onDisconnect = (connection: number) => {
    if (owner !== connection) return;
    const inFlight = handoverInFlight;
    if (inFlight !== undefined) {
      // The guest state is on its way: the destination's answer decides where the guest runs.
      void inFlight.then((handedOver) => {
        if (!handedOver && owner === connection) onDisconnect(connection);
      });
      return;
    }
    owner = undefined;
    sender?.close();
    sender = undefined;
    if (ctx.role() === "incoming") {
      ctx.discard("the orchestrator went away before the guest arrived");
      return;
    }
    if (ctx.role() !== "running") return;
    // The lease is lost mid-migration: take the function back and let the vCPUs run here.
    ctx.log("lease-lost", "the orchestrator went away; resuming on this host");
    const ep = vfioUserDeviceEndpoint(ctx.client());
    void (async () => {
      const r = await ep
        .setState(MigState.RUNNING)
        .catch((e: unknown) => ({ ok: false as const, errno: -1, e }));
      // No reset as a fallback: it would drop the guest's outstanding commands. A function left in
      // ERROR needs its reset from whoever manages the host; the event says so.
      if (!r.ok) ctx.log("lease-resume-device-failed", JSON.stringify(r));
      await ep.dmaLoggingStop().catch(() => {});
      ctx.mem.stopDirtyLog();
      resume();
      ctx.log("lease-resumed");
    })();
  };

  return { commands, pause, resume, onDisconnect, guestArrived: endMigration };
}
