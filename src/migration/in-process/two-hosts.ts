/**
 * Two nvmig hosts and one VM in one process, wired for in-band migration: each host's VF has a VFIO v2
 * portal backed by the NVMe variant driver (which talks to its PF through the PF host driver's admin
 * queue). Used by the migration tests, the demo and the benchmarks.
 */
import { HostNode } from "../../host/host-node.ts";
import type { BlockStore } from "../../storage/block-store.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import type { MigrationProfile } from "../../vfio/nvme/controller-ops.ts";
import { createNvmeVariantDriver, type NvmeVariantDriver } from "../../vfio/nvme/variant-driver.ts";
import { MigrationPortal } from "../../vfio/portal.ts";
import { type InProcessVm, startInProcessVm } from "../../vmm/in-process-vm.ts";
import type { GuestNvmeDriverOptions } from "../../vmm/nvme-driver.ts";
import { portalEndpoint } from "../endpoints.ts";
import { type MigrationOptions, migrate } from "../orchestrator.ts";
import type { MigrationReport } from "../report.ts";
import { inProcessVmDestination, inProcessVmSource } from "./vm-endpoints.ts";

export interface TwoHostsOptions {
  /** "shared": both hosts see one namespace store; "local": each host has its own. Default "shared". */
  storage?: "shared" | "local";
  /** PF command set the variant drivers use. Default "tp4159". */
  profile?: MigrationProfile;
  /** Namespace size, bytes. Default 64 MiB. */
  namespaceBytes?: number;
  /** Logical block size. Default 512. */
  lbaBytes?: 512 | 4096;
  /** VM RAM, bytes. Default 32 MiB. */
  vmRamBytes?: number;
  /** I/O queue pairs given to the VF. Default 4, range 1..64. */
  ioQueuePairs?: number;
  /** Guest driver options. */
  driver?: GuestNvmeDriverOptions;
  /** VF used on both hosts. Default 1. */
  vfn?: number;
}

export interface Side {
  host: HostNode;
  portal: MigrationPortal;
  variant: NvmeVariantDriver;
  store: BlockStore;
}

export class TwoHosts {
  /** Which side the VM runs on now. */
  current: "a" | "b" = "a";
  /** RAM the VM no longer uses (left by the last migration), reused as the next destination RAM. */
  private spareRam: Uint8Array | undefined;

  private constructor(
    readonly a: Side,
    readonly b: Side,
    readonly vm: InProcessVm,
    readonly options: Required<Omit<TwoHostsOptions, "driver">>,
  ) {}

  static async start(o: TwoHostsOptions = {}): Promise<TwoHosts> {
    const opts = {
      storage: o.storage ?? "shared",
      profile: o.profile ?? "tp4159",
      namespaceBytes: o.namespaceBytes ?? 64 << 20,
      lbaBytes: o.lbaBytes ?? 512,
      vmRamBytes: o.vmRamBytes ?? 32 << 20,
      ioQueuePairs: o.ioQueuePairs ?? 4,
      vfn: o.vfn ?? 1,
    } as const;
    const lbaCount = opts.namespaceBytes / opts.lbaBytes;
    const storeA = createMemoryBlockStore({ lbaBytes: opts.lbaBytes, lbaCount });
    const storeB =
      opts.storage === "shared" ? storeA : createMemoryBlockStore({ lbaBytes: opts.lbaBytes, lbaCount });
    const side = async (name: string, store: BlockStore): Promise<Side> => {
      // The VQ / VI flexible pools hold 9 resources per secondary: enough secondaries that one VF
      // can have ioQueuePairs + 1 (64 I/O queue pairs need 8).
      const secondaryCount = Math.max(4, Math.ceil((opts.ioQueuePairs + 1) / 9));
      const host = await HostNode.start({ name, namespaces: [{ nsid: 1, store }], secondaryCount });
      await host.bringUpVf(opts.vfn, opts.ioQueuePairs);
      const fn = host.vf(opts.vfn);
      const variant = await createNvmeVariantDriver({
        channel: host.pfDriver,
        vfn: opts.vfn,
        profile: opts.profile,
        storage: opts.storage,
        blocks: host.pfDriver,
        namespaces: [{ nsid: 1, lbaCount }],
        identity: `${name}/vf${opts.vfn}`,
        dmaRanges: () =>
          fn.dma.ranges().map((r) => ({ iova: BigInt(r.iova), length: BigInt(r.bytes.byteLength) })),
      });
      const portal = new MigrationPortal({
        migration: variant.migration,
        dmaLogging: variant.dmaLogging,
        label: `${name}/vf${opts.vfn}`,
      });
      return { host, portal, variant, store };
    };
    const a = await side("host-a", storeA);
    const b = await side("host-b", storeB);
    const vm = await startInProcessVm(a.host.vf(opts.vfn), {
      memoryBytes: opts.vmRamBytes,
      driver: { ioQueues: opts.ioQueuePairs, ...o.driver },
    });
    return new TwoHosts(a, b, vm, opts);
  }

  get source(): Side {
    return this.current === "a" ? this.a : this.b;
  }
  get destination(): Side {
    return this.current === "a" ? this.b : this.a;
  }

  /** Migrates the VM's function from the current side to the other, in band (VFIO portals). */
  async migrate(o: Partial<Omit<MigrationOptions, "source" | "destination">> = {}): Promise<MigrationReport> {
    const src = this.source;
    const dst = this.destination;
    const dstFn = dst.host.vf(this.options.vfn);
    const sourceRam = this.vm.memory.bytes;
    const destinationRam = this.spareRam ?? new Uint8Array(sourceRam.byteLength);
    this.spareRam = undefined;
    const report = await migrate({
      ...o,
      source: { device: portalEndpoint(src.portal), vm: inProcessVmSource(this.vm.memory, this.vm.port) },
      destination: {
        device: portalEndpoint(dst.portal),
        vm: inProcessVmDestination(this.vm.memory, this.vm.port, dstFn, destinationRam),
      },
      storage: this.options.storage,
      profile: this.options.profile,
      functionLabel: `vf${this.options.vfn}`,
      path: "in-band",
    });
    this.spareRam = report.result === "completed" ? sourceRam : destinationRam;
    if (report.result === "completed") {
      this.current = this.current === "a" ? "b" : "a";
      // The old source keeps a suspended function; reset it so it is clean for a migration back.
      await src.portal.reset();
      await src.host.bringUpVf(this.options.vfn, this.options.ioQueuePairs);
    }
    return report;
  }

  async stop(): Promise<void> {
    await this.a.host.stop();
    await this.b.host.stop();
  }
}
