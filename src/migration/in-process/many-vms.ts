/**
 * Two nvmig hosts and many VMs in one process, wired for in-band migration: VM i runs on VF i (i =
 * 1..vms) and every VF has a VFIO v2 portal on both hosts, backed by an NVMe variant driver that talks
 * to that host's PF through the PF host driver's one admin queue. Each VM migrates on its own, so
 * several migrations can run at once (`migrateMany`). Storage is shared: both hosts see one namespace
 * store, and each VM should address an LBA range of its own (`lbaRangeOf`).
 *
 * The one-VM testbed is `TwoHosts` (two-hosts.ts); this is the same wiring repeated per VF.
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

export interface ManyVmsOptions {
  /** VMs, one per VF (VFs 1..vms). Range 1..127. */
  vms: number;
  /** Secondary controllers (TotalVFs) per host. Default max(16, vms), range vms..127. */
  secondaryCount?: number;
  /**
   * VFs brought online on each host (VFs 1..onlineVfs; those past `vms` stay idle, as a host with
   * other functions assigned). Default vms, range vms..secondaryCount.
   */
  onlineVfs?: number;
  /** PF command set the variant drivers use. Default "tp4159". */
  profile?: MigrationProfile;
  /** Namespace size, bytes (shared by all VMs). Default 64 MiB. */
  namespaceBytes?: number;
  /** Logical block size. Default 512. */
  lbaBytes?: 512 | 4096;
  /** RAM of each VM, bytes. Default 8 MiB; a multiple of 4096. */
  vmRamBytes?: number;
  /**
   * I/O queue pairs of each VF. Default 2, range 1..8 (the flexible VQ / VI pools hold 9 per
   * secondary, and each VF needs ioQueuePairs + 1).
   */
  ioQueuePairs?: number;
  /** Guest driver options (every VM). Default: `ioQueues` = ioQueuePairs, the driver's other defaults. */
  driver?: GuestNvmeDriverOptions;
}

/** One VF's portal on one host. */
export interface FunctionSide {
  host: HostNode;
  portal: MigrationPortal;
  variant: NvmeVariantDriver;
}

/** One VM and its VF on both hosts. */
export interface VmSlot {
  /** VF number on both hosts (= index + 1). */
  readonly vfn: number;
  readonly vm: InProcessVm;
  /** Which host the VM runs on now. */
  current: "a" | "b";
  readonly a: FunctionSide;
  readonly b: FunctionSide;
}

type ResolvedOptions = Required<Omit<ManyVmsOptions, "driver">>;

export class ManyVms {
  private constructor(
    readonly a: HostNode,
    readonly b: HostNode,
    readonly store: BlockStore,
    readonly slots: readonly VmSlot[],
    readonly options: ResolvedOptions,
  ) {}

  static async start(o: ManyVmsOptions): Promise<ManyVms> {
    const opts: ResolvedOptions = {
      vms: o.vms,
      secondaryCount: o.secondaryCount ?? Math.max(16, o.vms),
      onlineVfs: o.onlineVfs ?? o.vms,
      profile: o.profile ?? "tp4159",
      namespaceBytes: o.namespaceBytes ?? 64 << 20,
      lbaBytes: o.lbaBytes ?? 512,
      vmRamBytes: o.vmRamBytes ?? 8 << 20,
      ioQueuePairs: o.ioQueuePairs ?? 2,
    };
    if (!Number.isInteger(opts.vms) || opts.vms < 1 || opts.vms > 127)
      throw new RangeError(`vms ${opts.vms}: 1..127`);
    if (!Number.isInteger(opts.secondaryCount) || opts.secondaryCount < opts.vms || opts.secondaryCount > 127)
      throw new RangeError(`secondaryCount ${opts.secondaryCount}: vms..127`);
    if (
      !Number.isInteger(opts.onlineVfs) ||
      opts.onlineVfs < opts.vms ||
      opts.onlineVfs > opts.secondaryCount
    )
      throw new RangeError(`onlineVfs ${opts.onlineVfs}: vms..secondaryCount`);
    if (!Number.isInteger(opts.ioQueuePairs) || opts.ioQueuePairs < 1 || opts.ioQueuePairs > 8)
      throw new RangeError(`ioQueuePairs ${opts.ioQueuePairs}: 1..8`);
    const lbaCount = opts.namespaceBytes / opts.lbaBytes;
    const store = createMemoryBlockStore({ lbaBytes: opts.lbaBytes, lbaCount });
    const host = async (name: string): Promise<HostNode> => {
      const h = await HostNode.start({
        name,
        namespaces: [{ nsid: 1, store }],
        secondaryCount: opts.secondaryCount,
      });
      for (let vfn = 1; vfn <= opts.onlineVfs; vfn++) await h.bringUpVf(vfn, opts.ioQueuePairs);
      return h;
    };
    const side = async (h: HostNode, vfn: number): Promise<FunctionSide> => {
      const fn = h.vf(vfn);
      const variant = await createNvmeVariantDriver({
        channel: h.pfDriver,
        vfn,
        profile: opts.profile,
        storage: "shared",
        blocks: h.pfDriver,
        namespaces: [{ nsid: 1, lbaCount }],
        identity: `${h.name}/vf${vfn}`,
        dmaRanges: () =>
          fn.dma.ranges().map((r) => ({ iova: BigInt(r.iova), length: BigInt(r.bytes.byteLength) })),
      });
      const portal = new MigrationPortal({
        migration: variant.migration,
        dmaLogging: variant.dmaLogging,
        label: `${h.name}/vf${vfn}`,
      });
      return { host: h, portal, variant };
    };
    const a = await host("host-a");
    const b = await host("host-b");
    const slots: VmSlot[] = [];
    for (let vfn = 1; vfn <= opts.vms; vfn++) {
      const sa = await side(a, vfn);
      const sb = await side(b, vfn);
      const vm = await startInProcessVm(a.vf(vfn), {
        memoryBytes: opts.vmRamBytes,
        driver: { ioQueues: opts.ioQueuePairs, ...o.driver },
      });
      slots.push({ vfn, vm, current: "a", a: sa, b: sb });
    }
    return new ManyVms(a, b, store, slots, opts);
  }

  /** An LBA range [start, count) of the shared namespace that VM `index` alone uses. */
  lbaRangeOf(index: number): [start: number, count: number] {
    const per = Math.floor(this.options.namespaceBytes / this.options.lbaBytes / this.options.vms);
    return [index * per, per];
  }

  /**
   * Migrates VM `index` (0-based; VF index + 1) from its current host to the other, in band. After a
   * completed migration the old source's function is reset and brought up again (clean for a
   * migration back), as `TwoHosts.migrate` does.
   */
  async migrate(
    index: number,
    o: Partial<Omit<MigrationOptions, "source" | "destination">> = {},
  ): Promise<MigrationReport> {
    const slot = this.slots[index];
    if (slot === undefined) throw new RangeError(`no VM ${index}`);
    const src = slot.current === "a" ? slot.a : slot.b;
    const dst = slot.current === "a" ? slot.b : slot.a;
    const vm = slot.vm;
    const report = await migrate({
      ...o,
      source: { device: portalEndpoint(src.portal), vm: inProcessVmSource(vm.memory, vm.port) },
      destination: {
        device: portalEndpoint(dst.portal),
        vm: inProcessVmDestination(vm.memory, vm.port, dst.host.vf(slot.vfn)),
      },
      storage: "shared",
      profile: this.options.profile,
      functionLabel: `vf${slot.vfn}`,
      path: "in-band",
    });
    if (report.result === "completed") {
      slot.current = slot.current === "a" ? "b" : "a";
      await src.portal.reset();
      await src.host.bringUpVf(slot.vfn, this.options.ioQueuePairs);
    }
    return report;
  }

  /** Migrates the VMs `indexes` (default all) at once; reports in the order of `indexes`. */
  migrateMany(
    indexes: readonly number[] = this.slots.map((_, i) => i),
    o: Partial<Omit<MigrationOptions, "source" | "destination">> = {},
  ): Promise<MigrationReport[]> {
    return Promise.all(indexes.map((i) => this.migrate(i, o)));
  }

  async stop(): Promise<void> {
    await this.a.stop();
    await this.b.stop();
  }
}
