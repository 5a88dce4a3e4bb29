/**
 * In-process VM endpoints: the source VM is a `GuestMemory` + `InProcessPort` (its vCPUs are the
 * port's register accesses and interrupts); the destination is RAM of its own (a separate buffer filled
 * only by the migration) plus the destination function. At switchover the VM continues on the
 * destination RAM (`GuestMemory.rebind`) and the port moves to the destination function — so any page
 * the dirty tracking missed shows up as wrong data in the guest, which the workload verifier catches.
 */
import type { GuestMemory } from "../../vmm/guest-memory.ts";
import type { InProcessFunction, InProcessPort } from "../../vmm/in-process-port.ts";
import type { VmDestination, VmSource } from "../endpoints.ts";

const PAGE = 4096;

export function inProcessVmSource(memory: GuestMemory, port: InProcessPort): VmSource {
  return {
    ramBytes: memory.sizeBytes,
    startDirtyLog: () => memory.startDirtyLog(),
    collectDirty: () => memory.collectDirty(),
    dirtyPageCount: () => memory.dirtyPageCount,
    stopDirtyLog: () => memory.stopDirtyLog(),
    page: (p) => memory.bytes.subarray(p * PAGE, p * PAGE + PAGE),
    pauseVcpus: async () => port.pause(),
    resumeVcpus: () => port.resume(),
  };
}

export interface InProcessDestination extends VmDestination {
  /** The destination's RAM as filled so far. */
  readonly ram: Uint8Array;
}

/**
 * `ram`: the buffer that becomes the destination's RAM (`memory.sizeBytes` bytes, contents don't
 * matter: pre-copy overwrites every page). Default a new one. Reusing the RAM an earlier migration
 * left behind spares the process a large allocation (and the garbage collections it triggers) per
 * migration.
 */
export function inProcessVmDestination(
  memory: GuestMemory,
  port: InProcessPort,
  destinationFunction: InProcessFunction,
  ram: Uint8Array = new Uint8Array(memory.sizeBytes),
): InProcessDestination {
  if (ram.byteLength !== memory.sizeBytes || ram === memory.bytes)
    throw new Error("destination RAM must be a separate buffer of the VM's RAM size");
  // As a destination VMM does at start: its RAM is DMA-mapped for the function before any device state
  // arrives, so the restore can check every queue address against it.
  if (!destinationFunction.dma.map(0, ram, true))
    throw new Error("destination function already has memory at IOVA 0");
  return {
    ram,
    async writePages(pages, bytes) {
      for (let i = 0; i < pages.length; i++) ram.set(bytes[i]!, pages[i]! * PAGE);
    },
    async start() {
      port.detach();
      destinationFunction.dma.unmap(0, ram.byteLength);
      memory.rebind(ram);
      port.retarget(destinationFunction);
      port.resume();
    },
    async discard() {
      destinationFunction.dma.unmap(0, ram.byteLength);
      ram.fill(0);
    },
  };
}
