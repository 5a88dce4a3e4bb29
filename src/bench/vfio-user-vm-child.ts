/**
 * Child process of `runVfioUserBench` (not a module to import at run time): a VMM attached to a
 * vfio-user socket — memfd guest RAM, mmap'd doorbell page, MSI-X eventfds or polling — that runs
 * one unverified workload after a warm-up and prints JSON lines on stdout:
 *
 *   {"event":"measuring"}                 when the measured workload starts
 *   {"event":"result", …VfioUserVmChildResult}
 *
 *   node --import tsx src/bench/vfio-user-vm-child.ts '<VfioUserVmChildOptions as JSON>'
 */
import { GuestMemoryFd } from "../native/guest-memory-fd.ts";
import { VfioUserClient } from "../vfio-user/client.ts";
import { SocketTransport } from "../vfio-user/socket-transport.ts";
import { GuestMemory } from "../vmm/guest-memory.ts";
import { GuestNvmeDriver } from "../vmm/nvme-driver.ts";
import { VfioUserPort } from "../vmm/vfio-user-port.ts";
import { Workload, type WorkloadOptions } from "../vmm/workload.ts";

export interface VfioUserVmChildOptions {
  socket: string;
  memoryBytes: number;
  ioQueueEntries: number;
  completionMode: "interrupt" | "polling";
  shadowDoorbells: boolean;
  workload: Omit<WorkloadOptions, "durationMs" | "verify">;
  warmupMs: number;
  durationMs: number;
}

export interface VfioUserVmChildResult {
  ops: number;
  errors: number;
  elapsedMs: number;
  iops: number;
  latencyUs: { mean: number; p50: number; p99: number; max: number };
  /** CPU time of this (VMM) process during the measurement, ms. */
  cpuMs: number;
  interrupts: number;
  mmioDoorbells: number;
  skippedDoorbells: number;
  shadowDoorbellsActive: boolean;
  doorbellsMapped: boolean;
}

const o = JSON.parse(process.argv[2] ?? "{}") as VfioUserVmChildOptions;
const ram = GuestMemoryFd.create("nvmig-bench-ram", o.memoryBytes);
const client = await VfioUserClient.connect(SocketTransport.connect(o.socket));
const port = await VfioUserPort.attach(client, ram);
const mem = new GuestMemory(ram.bytes());
const driver = new GuestNvmeDriver(port, mem, {
  ioQueues: o.workload.queues,
  ioQueueEntries: o.ioQueueEntries,
  completionMode: o.completionMode,
  shadowDoorbells: o.shadowDoorbells,
});
await driver.init();
if (o.warmupMs > 0) {
  const warm = new Workload(driver, mem, { ...o.workload, durationMs: o.warmupMs, verify: false });
  await warm.start();
  warm.release();
}
const before = driver.stats();
const w = new Workload(driver, mem, { ...o.workload, durationMs: o.durationMs, verify: false });
process.stdout.write(`${JSON.stringify({ event: "measuring" })}\n`);
const cpu0 = process.cpuUsage();
const s = await w.start();
const cpu = process.cpuUsage(cpu0);
w.release();
const after = driver.stats();
const result: VfioUserVmChildResult = {
  ops: s.ops,
  errors: s.errors,
  elapsedMs: s.elapsedMs,
  iops: s.iops,
  latencyUs: { mean: s.latency.meanUs, p50: s.latency.p50Us, p99: s.latency.p99Us, max: s.latency.maxUs },
  cpuMs: (cpu.user + cpu.system) / 1000,
  interrupts: after.interrupts - before.interrupts,
  mmioDoorbells: after.mmioDoorbells - before.mmioDoorbells,
  skippedDoorbells: after.skippedDoorbells - before.skippedDoorbells,
  shadowDoorbellsActive: driver.shadowDoorbellsActive,
  doorbellsMapped: port.doorbellsMapped,
};
process.stdout.write(`${JSON.stringify({ event: "result", ...result })}\n`);
await driver.shutdown();
await port.detach();
client.close();
ram.close();
