/**
 * The orchestrator's VM seams for VMs in other processes: the source and destination `nvmig vm`
 * processes, reached through their control channels (`src/vmm/vm-control.ts` + `vm-migration.ts`).
 * Guest RAM never passes through the orchestrator: the source VMM streams it straight to the
 * destination VMM over their migration channel (TCP), and at switchover hands the guest's own state
 * over the same way (the destination then runs the guest).
 *
 *   orchestrator ── control ──► source VMM ═══ migration channel (TCP) ═══► destination VMM ◄── control
 *
 * Devices are reached either through the VMMs (`vmmDeviceEndpoint`: in band, each VMM's vfio-user
 * client) or through the hosts' agents (out of band).
 */
import type { VmControlClient } from "../../vmm/vm-control.ts";
import type { DeviceEndpoint, VmDestination, VmSource } from "../endpoints.ts";
import { remoteDeviceEndpoint } from "./device-relay.ts";

export class RemoteVmError extends Error {
  override readonly name = "RemoteVmError";
  constructor(
    readonly code: "failed" | "bad-request" | "unknown-command" | "not-ready",
    message: string,
  ) {
    super(message);
  }
}

/** One control request that must succeed; its reply fields. @throws RemoteVmError */
export async function controlCall(
  c: VmControlClient,
  cmd: string,
  args: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const r = await c.request(cmd, args);
  if (r.ok !== true) {
    const code = (r.error as RemoteVmError["code"] | undefined) ?? "failed";
    throw new RemoteVmError(code, `${cmd}: ${String(r.message ?? code)}`);
  }
  return r;
}

export interface VmDescription {
  role: "running" | "incoming" | "handed-over" | "discarded";
  ramBytes: number;
  incoming: { host: string; port: number } | null;
}

export async function describeVm(c: VmControlClient): Promise<VmDescription> {
  const r = await controlCall(c, "describe");
  return {
    role: r.role as VmDescription["role"],
    ramBytes: r.ramBytes as number,
    incoming: (r.incoming as VmDescription["incoming"]) ?? null,
  };
}

/** The function behind a VMM, driven through the VMM's own vfio-user connection (in band). */
export function vmmDeviceEndpoint(c: VmControlClient): DeviceEndpoint {
  return remoteDeviceEndpoint((cmd, args) => c.request(cmd, args));
}

/**
 * Source and destination VM seams over two control connections. Connects the source VMM's migration
 * channel to the destination VMM's incoming listener first.
 * @throws RemoteVmError when the VMs are not a running source and an incoming destination of the same RAM size.
 */
export async function remoteVmPair(
  source: VmControlClient,
  destination: VmControlClient,
): Promise<{ source: VmSource; destination: VmDestination }> {
  const s = await describeVm(source);
  const d = await describeVm(destination);
  if (s.role !== "running") throw new RemoteVmError("not-ready", `the source VM is ${s.role}`);
  if (d.role !== "incoming" || d.incoming === null)
    throw new RemoteVmError("not-ready", `the destination VM is ${d.role}, not waiting for a guest`);
  if (s.ramBytes !== d.ramBytes)
    throw new RemoteVmError("not-ready", `RAM sizes differ: source ${s.ramBytes}, destination ${d.ramBytes}`);
  await controlCall(source, "migrateConnect", { host: d.incoming.host, port: d.incoming.port });
  const vmSource: VmSource = {
    ramBytes: s.ramBytes,
    startDirtyLog: async () => void (await controlCall(source, "startDirtyLog")),
    collectDirty: async () => Uint32Array.from((await controlCall(source, "collectDirty")).pages as number[]),
    dirtyPageCount: async () => (await controlCall(source, "dirtyPageCount")).count as number,
    stopDirtyLog: async () => void (await controlCall(source, "stopDirtyLog")),
    transferPages: async (pages) => {
      if (pages === "all") await controlCall(source, "sendPages", { all: true });
      else await controlCall(source, "sendPages", { pages });
    },
    pauseVcpus: async () => void (await controlCall(source, "pause")),
    resumeVcpus: async () => void (await controlCall(source, "resume")),
  };
  const vmDestination: VmDestination = {
    // The guest's own state goes from the source VMM to the destination VMM, which starts it.
    start: async () => void (await controlCall(source, "handover")),
    discard: async () => void (await controlCall(destination, "discard")),
  };
  return { source: vmSource, destination: vmDestination };
}
