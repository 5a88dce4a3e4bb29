/**
 * Child process of `runIoBench` (not a module to import at run time): builds a subsystem with the PF
 * and N online VFs, each VF driven by its own in-process guest driver (polling mode, 1 MiB of guest
 * RAM) that created 4 I/O queue pairs and sits idle, then prints one JSON `RssChildReport` line.
 *
 *   node --expose-gc --import tsx src/bench/rss-child.ts [vfs=64]
 *
 * Run with `--expose-gc` so the figures are taken after a full collection.
 */
import { HostNode } from "../host/host-node.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { startInProcessVm } from "../vmm/in-process-vm.ts";

export interface RssChildReport {
  vfs: number;
  ioQueuePairsPerVf: number;
  /** Guest RAM allocated per VF (only pages the driver touched are resident). */
  guestRamBytesPerVf: number;
  /** PF host driver memory (likewise resident only where touched). */
  pfHostMemoryBytes: number;
  /** True when `global.gc` ran before the figures were taken. */
  gcRan: boolean;
  /** `process.memoryUsage()` after building everything. */
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  /** RSS after the imports, before anything was built (the runtime's own share). */
  baselineRssBytes: number;
  /** Time to build the subsystem and bring every VF and its driver up, ms. */
  buildMs: number;
}

const MiB = 2 ** 20;
const IO_QUEUE_PAIRS = 4;
const GUEST_RAM_BYTES = MiB;
const PF_HOST_MEMORY_BYTES = 8 * MiB;

async function collect(): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return false;
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  return true;
}

async function main(): Promise<void> {
  const vfs = Number(process.argv[2] ?? 64);
  if (!Number.isInteger(vfs) || vfs < 1 || vfs > 127) throw new RangeError(`vfs ${vfs} out of range 1..127`);
  await collect();
  const baselineRssBytes = process.memoryUsage().rss;
  const t0 = performance.now();
  const host = await HostNode.start({
    name: "rss",
    namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 4096, lbaCount: 1 << 18 }) }],
    secondaryCount: vfs,
    pfHostMemoryBytes: PF_HOST_MEMORY_BYTES,
  });
  const vms = [];
  for (let vfn = 1; vfn <= vfs; vfn++) {
    const fn = await host.bringUpVf(vfn, IO_QUEUE_PAIRS);
    vms.push(
      await startInProcessVm(fn, {
        memoryBytes: GUEST_RAM_BYTES,
        // 4 KiB transfers need no PRP list pages, so 4 queue pairs fit in 1 MiB of guest RAM.
        driver: { ioQueues: IO_QUEUE_PAIRS, completionMode: "polling", maxTransferBytes: 4096 },
      }),
    );
  }
  const buildMs = performance.now() - t0;
  for (const vm of vms) {
    if (vm.driver.ioQueueCount !== IO_QUEUE_PAIRS) {
      throw new Error(`a VF's driver has ${vm.driver.ioQueueCount} I/O queue pairs, not ${IO_QUEUE_PAIRS}`);
    }
  }
  const gcRan = await collect();
  const m = process.memoryUsage();
  const report: RssChildReport = {
    vfs,
    ioQueuePairsPerVf: IO_QUEUE_PAIRS,
    guestRamBytesPerVf: GUEST_RAM_BYTES,
    pfHostMemoryBytes: PF_HOST_MEMORY_BYTES,
    gcRan,
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    baselineRssBytes,
    buildMs: Math.round(buildMs),
  };
  // Keep everything reachable until the figures are taken.
  if (vms.length !== vfs || host.subsystem.vfs.size !== vfs) throw new Error("VFs lost");
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
