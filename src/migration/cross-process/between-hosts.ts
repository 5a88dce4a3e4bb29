/**
 * One live migration between two running `nvmig host` daemons, of the function a running `nvmig vm`
 * process uses, by either path — what `nvmig migrate` does:
 *
 *   1. read both hosts' configuration files (socket directory, control socket, namespaces, storage);
 *   2. start the destination VMM: `nvmig vm --attach <to>/<function>.sock --incoming 127.0.0.1:0
 *      --control <destControl>` (detached; it outlives this command and runs the guest afterwards);
 *   3. in band: both VMMs' vfio-user portals (device relay on their control channels);
 *      out of band: both hosts' agents over gRPC (UNIX control sockets), leases included;
 *   4. the orchestrator's pre-copy loop; guest RAM and, at switchover, the guest go VMM → VMM over TCP;
 *   5. completed: the source VMM is released (it exits), out of band the source function is reset;
 *      rolled back: the destination VMM is told to discard and exits, the guest runs on at the source.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ControlClient, connectControl } from "../../control/client.ts";
import { type HostConfig, loadHostConfig } from "../../host/daemon-config.ts";
import { VmControlClient } from "../../vmm/vm-control.ts";
import type { DeviceEndpoint } from "../endpoints.ts";
import { portalEndpoint } from "../endpoints.ts";
import { MigrationError } from "../errors.ts";
import { migrate, type ProgressEvent } from "../orchestrator.ts";
import { agentPortal } from "../out-of-band/agent-backend.ts";
import type { MigrationReport } from "../report.ts";
import { controlCall, describeVm, remoteVmPair, vmmDeviceEndpoint } from "./vm-endpoints.ts";

export interface BetweenHostsOptions {
  /** Source host's configuration file (as given to `nvmig host --config`). Required. */
  from: string;
  /** Destination host's configuration file. Required. */
  to: string;
  /** The function: "vf<N>" (N = VF number = CNTLID on our subsystems). Required. */
  functionId: string;
  /** The source VM's control socket (`nvmig vm --control`). Required. */
  vmControl: string;
  /** "in-band" (default) or "out-of-band". */
  path?: "in-band" | "out-of-band";
  /** Downtime limit, ms. Default 300, range 1..600000. */
  maxDowntimeMs?: number;
  /** Bandwidth cap for pre-copy, bytes/s. Default unlimited. */
  maxBandwidthBytesPerSec?: number;
  /**
   * Out of band: the agents' lease on each function, ms — if this command dies, the source function
   * resumes (and a restored destination is reset) this long after the last renewal. Default 10000,
   * range 1000..600000.
   */
  leaseMs?: number;
  /** Control socket of the destination VMM. Default `<destination socketDir>/<function>-vm.control`. */
  destControl?: string;
  /** Where the destination VMM's stderr goes (its log). Default `<destControl>.log`. */
  destLog?: string;
  /** Where its stdout goes (its result line at the end). Default `<destControl>.out`. */
  destOut?: string;
  onProgress?: (e: ProgressEvent) => void;
  /** Test hook: called as each phase is entered (see `MigrationOptions.onPhase`). */
  onPhase?: (phase: string) => void | Promise<void>;
  /** How long to wait for the destination VMM's control socket, ms. Default 30000. */
  startTimeoutMs?: number;
  /** Test hook: called with the destination VMM's pid right after it was spawned. Default none. */
  onDestinationStarted?: (pid: number) => void;
}

export interface BetweenHostsResult {
  report: MigrationReport;
  /** The destination VMM (runs the guest when the report says completed). */
  destination: { control: string; pid: number | undefined; log: string; out: string };
}

const BIN = fileURLToPath(new URL("../../../bin/nvmig.mjs", import.meta.url));

function vfnOf(functionId: string): number {
  const m = /^vf([1-9]\d{0,2})$/.exec(functionId);
  if (m === null)
    throw new MigrationError("invalid-argument", `function ${functionId}: vf<N>, N 1..999`, "setup");
  return Number(m[1]);
}

function load(path: string, which: string): HostConfig {
  try {
    return loadHostConfig(path);
  } catch (e) {
    throw new MigrationError("invalid-argument", `${which} host: ${(e as Error).message}`, "setup", {
      cause: e,
    });
  }
}

async function waitForSocket(
  path: string,
  timeoutMs: number,
  exited: () => string | undefined,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    const why = exited();
    if (why !== undefined)
      throw new MigrationError("vm-control", `the destination VMM exited: ${why}`, "setup");
    if (Date.now() > end)
      throw new MigrationError("timeout", `no destination VMM control socket at ${path}`, "setup");
    await new Promise((r) => setTimeout(r, 20));
  }
}

function agentClient(cfg: HostConfig, which: string): ControlClient {
  const unix = cfg.control?.unixSocket;
  if (unix === undefined) {
    throw new MigrationError(
      "invalid-argument",
      `${which} host ${cfg.name} has no control.unixSocket: out-of-band migration needs the agent's UNIX socket`,
      "setup",
    );
  }
  return connectControl({ target: `unix:${unix}` });
}

export async function migrateBetweenHosts(o: BetweenHostsOptions): Promise<BetweenHostsResult> {
  const from = load(o.from, "source");
  const to = load(o.to, "destination");
  const vfn = vfnOf(o.functionId);
  const path = o.path ?? "in-band";
  const socket = join(to.socketDir, `${o.functionId}.sock`);
  if (!existsSync(socket))
    throw new MigrationError("invalid-argument", `destination host ${to.name} exports no ${socket}`, "setup");
  if (from.storage !== to.storage)
    throw new MigrationError(
      "invalid-argument",
      `storage differs: ${from.storage} vs ${to.storage}`,
      "setup",
    );

  const src = await VmControlClient.connect(o.vmControl).catch((e: unknown) => {
    throw new MigrationError("vm-control", `no VM at ${o.vmControl}: ${(e as Error).message}`, "setup", {
      cause: e,
    });
  });
  const clients: { close(): void }[] = [src];
  try {
    const sd = await describeVm(src);
    if (sd.role !== "running")
      throw new MigrationError("vm-control", `the VM at ${o.vmControl} is ${sd.role}`, "setup");

    // The destination VMM, with the source's RAM size, waiting for the guest.
    const destControl = o.destControl ?? join(to.socketDir, `${o.functionId}-vm.control`);
    const destLog = o.destLog ?? `${destControl}.log`;
    mkdirSync(dirname(destLog), { recursive: true });
    const destOut = o.destOut ?? `${destControl}.out`;
    const logFd = openSync(destLog, "a");
    const outFd = openSync(destOut, "a");
    const child = spawn(
      process.execPath,
      [
        BIN,
        "vm",
        "--attach",
        socket,
        "--incoming",
        "127.0.0.1:0",
        "--control",
        destControl,
        "--memory-mib",
        String(sd.ramBytes / (1 << 20)),
        "--json",
      ],
      { detached: true, stdio: ["ignore", outFd, logFd] },
    );
    closeSync(logFd);
    closeSync(outFd);
    let exitedWhy: string | undefined;
    child.once("exit", (code, signal) => {
      exitedWhy = `code ${code} signal ${signal} (see ${destLog})`;
    });
    child.unref();
    if (child.pid !== undefined) o.onDestinationStarted?.(child.pid);
    await waitForSocket(destControl, o.startTimeoutMs ?? 30_000, () => exitedWhy);
    const dst = await VmControlClient.connect(destControl);
    clients.push(dst);

    let srcDevice: DeviceEndpoint;
    let dstDevice: DeviceEndpoint;
    let srcAgent: ControlClient | undefined;
    if (path === "in-band") {
      srcDevice = vmmDeviceEndpoint(src);
      dstDevice = vmmDeviceEndpoint(dst);
    } else {
      srcAgent = agentClient(from, "source");
      const dstAgent = agentClient(to, "destination");
      clients.push(srcAgent, dstAgent);
      const namespaces = from.namespaces.map((n) => ({
        nsid: n.nsid,
        lbaBytes: n.lbaBytes,
        lbaCount: n.sizeBytes / n.lbaBytes,
      }));
      const common = {
        storage: from.storage,
        namespaces,
        cntlid: vfn,
        ...(o.leaseMs === undefined ? {} : { leaseMs: o.leaseMs }),
      } as const;
      srcDevice = portalEndpoint(
        agentPortal({ ...common, client: srcAgent, label: `${from.name}/${o.functionId}` }),
      );
      dstDevice = portalEndpoint(
        agentPortal({ ...common, client: dstAgent, label: `${to.name}/${o.functionId}` }),
      );
    }
    const vms = await remoteVmPair(src, dst);
    const report = await migrate({
      source: { device: srcDevice, vm: vms.source },
      destination: { device: dstDevice, vm: vms.destination },
      ...(o.maxDowntimeMs === undefined ? {} : { maxDowntimeMs: o.maxDowntimeMs }),
      ...(o.maxBandwidthBytesPerSec === undefined
        ? {}
        : { maxBandwidthBytesPerSec: o.maxBandwidthBytesPerSec }),
      path,
      storage: from.storage,
      profile: from.profile,
      functionLabel: `${from.name}/${o.functionId} → ${to.name}/${o.functionId}`,
      ...(o.onProgress === undefined ? {} : { onProgress: o.onProgress }),
      ...(o.onPhase === undefined ? {} : { onPhase: o.onPhase }),
    });
    if (report.result === "completed") {
      await controlCall(src, "release").catch(() => {});
      // Out of band the source function stays suspended until reset: give it back clean.
      if (srcAgent !== undefined) await srcAgent.resetFunction({ cntlid: vfn }).catch(() => {});
    }
    return { report, destination: { control: destControl, pid: child.pid, log: destLog, out: destOut } };
  } finally {
    for (const c of clients) c.close();
  }
}
