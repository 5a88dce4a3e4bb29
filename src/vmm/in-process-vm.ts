/**
 * A VM in process: guest RAM, a port to one PCI function, and the guest's NVMe driver brought up on it.
 * The workload is created by the caller (it owns its options and verifier).
 */
import { createGuestMemory, type GuestMemory } from "./guest-memory.ts";
import { type InProcessFunction, InProcessPort } from "./in-process-port.ts";
import { GuestNvmeDriver, type GuestNvmeDriverOptions } from "./nvme-driver.ts";

export interface InProcessVmOptions {
  /** Guest RAM, bytes. Default 64 MiB; a multiple of 4096. */
  memoryBytes?: number;
  driver?: GuestNvmeDriverOptions;
}

export interface InProcessVm {
  readonly memory: GuestMemory;
  readonly port: InProcessPort;
  readonly driver: GuestNvmeDriver;
}

/** Creates guest RAM, attaches it to `fn` and brings the guest driver up (reset, admin queue, I/O queues). */
export async function startInProcessVm(
  fn: InProcessFunction,
  opts: InProcessVmOptions = {},
): Promise<InProcessVm> {
  const memory = createGuestMemory(opts.memoryBytes ?? 64 << 20);
  const port = new InProcessPort(fn, memory);
  const driver = new GuestNvmeDriver(port, memory, opts.driver ?? {});
  await driver.init();
  return { memory, port, driver };
}
